"""Search spaces for ``python -m infnet.tune``: YAML files in ``search_spaces/``, validated on load.

A file looks like this (``search_spaces/implicit.yaml``)::

    description: free text
    base_overrides: [method=implicit]           # Hydra overrides every trial starts from
    params:                                     # dotted config key -> distribution, sampled in this order
      method.inner_steps: {type: int, low: 1, high: 20, log: true}
      method.solver: {type: categorical, choices: [cg, neumann, identity]}
      method.iters: {type: int, low: 2, high: 20, when: {method.solver: [cg, neumann]}}
      model.hidden: {type: categorical, choices: [[150, 150], [300, 300]]}

Distributions: ``int`` and ``float`` (``low``, ``high``, optional ``log``, optional ``step``) and
``categorical`` (``choices``: scalars or lists of scalars; a list choice reaches Optuna as its JSON
string and is decoded before it is applied). ``when: {param: [values]}`` makes a parameter
conditional on an earlier categorical parameter (Optuna define-by-run: it is not sampled otherwise
and the base config's value applies).

:class:`SearchSpace` is the define-by-run function handed to Optuna: a module-level class holding
plain data, so ``pickle`` can store it with the searcher state (a closure would break Tune's
experiment checkpoints). Every problem is a :class:`SearchSpaceError` naming the file and the key.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from infnet.config import ConfigError, validate

TYPES = ("int", "float", "categorical")
#: Keys fixed for a whole sweep: the data set is loaded once per sweep, and ASHA's budget is
#: ``trainer.max_epochs`` with a grace period that starts after ``method.pretrain_epochs``.
FIXED_PREFIXES = ("data.", "tracking.", "tune.")
FIXED_KEYS = ("method.name", "trainer.max_epochs", "method.pretrain_epochs", "trainer.device", "trainer.num_threads")
#: data keys a trial may vary: applied by each training run to the loaded data (the held-out outer split)
PER_TRIAL_DATA_KEYS = ("data.outer_fraction",)
_PARAM_FIELDS = {"type", "low", "high", "log", "step", "choices", "when"}
_TOP_FIELDS = {"description", "base_overrides", "params"}

Scalar = bool | int | float | str | None
_INACTIVE = object()  # the value of a parameter that was not sampled (its condition was false)


class SearchSpaceError(ValueError):
    """An invalid search-space file; the message names the file and the offending key."""


@dataclass(frozen=True)
class Param:
    """One searched config key: ``type`` int | float | categorical, its range or choices, and the
    condition ``when`` ({earlier categorical param: allowed values}) under which it is sampled."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def optuna_choices(self) -> list[Scalar]:
        """Choices as Optuna stores them: list choices become their JSON string."""
        return [json.dumps(c) if isinstance(c, list) else c for c in self.choices]

    def decode(self, value: Any) -> Any:
        """The config value for a sampled Optuna ``value`` (inverse of :meth:`optuna_choices`)."""
        if self.type == "categorical" and isinstance(value, str):
            lists = {json.dumps(c): c for c in self.choices if isinstance(c, list)}
            return lists.get(value, value)
        return value

    def candidates(self) -> list[Any]:
        """Config values that bound this distribution (checked against the config on load)."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]

    def suggest(self, trial: Any) -> Any:
        """Sample this parameter on an ``optuna.Trial``."""
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        if self.type == "float":
            return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)
        return trial.suggest_categorical(self.name, self.optuna_choices())


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space; calling it on an ``optuna.Trial`` samples it (define-by-run)."""

    name: str
    params: tuple[Param, ...]
    base_overrides: tuple[str, ...] = ()
    description: str = ""
    source: str = ""
    spec: dict[str, Any] = field(default_factory=dict, compare=False)

    def __call__(self, trial: Any) -> None:
        """Suggest every active parameter in file order (conditions refer to earlier parameters)."""
        values: dict[str, Any] = {}
        for p in self.params:
            if all(values.get(k, _INACTIVE) in allowed for k, allowed in p.when):
                values[p.name] = p.suggest(trial)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def conditional(self) -> bool:
        return any(p.when for p in self.params)

    def decode(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Sampled Optuna values -> config values, for the keys of this space present in ``sampled``."""
        by_name = {p.name: p for p in self.params}
        return {k: by_name[k].decode(v) for k, v in sampled.items() if k in by_name}

    def apply(self, cfg: DictConfig | Mapping[str, Any], sampled: Mapping[str, Any]) -> DictConfig:
        """A copy of ``cfg`` with the sampled (Optuna-encoded) parameters decoded and set."""
        return _with_values(cfg, self.decode(sampled))

    def check(self, cfg: DictConfig) -> None:
        """Check every parameter against a composed training config: the key exists, its bounds or
        choices have the config value's kind (list or scalar), and each passes ``infnet.config.validate``
        (together with the parameters that are sampled only under that value)."""
        for p in self.params:
            missing = object()
            current = OmegaConf.select(cfg, p.name, default=missing)
            if current is missing or isinstance(current, DictConfig):
                raise self.error(p.name, f"'{p.name}' is not a key of the training config (base_overrides: "
                                         f"{list(self.base_overrides)}, then the command line's)")
            for value in p.candidates():
                if current is not None and isinstance(value, list) != OmegaConf.is_list(current):
                    raise self.error(p.name, f"value {value!r} does not match the config value {current!r}")
                # with the parameters sampled only under this value (``when``) at one of their candidates
                dependents = {q.name: q.candidates()[0] for q in self.params
                              if any(ref == p.name and value in allowed for ref, allowed in q.when)}
                try:
                    validate(_with_values(cfg, {p.name: value, **dependents}))
                except ConfigError as exc:
                    raise self.error(p.name, str(exc)) from None

    def error(self, key: str, message: str) -> SearchSpaceError:
        return SearchSpaceError(f"{self.source or self.name}: {key}: {message}")


def _with_values(cfg: DictConfig | Mapping[str, Any], values: Mapping[str, Any]) -> DictConfig:
    """A copy of ``cfg`` with the dotted ``values`` set (replacing, not merging, lists and mappings)."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg))
    for key, value in values.items():
        OmegaConf.update(out, key, value, merge=False)
    return out


def search_space_dir() -> Path:
    """Where named spaces live: ``$INFNET_SEARCH_SPACES``, else the package's ``infnet/search_spaces``: in a
    checkout a link to the top-level ``search_spaces/`` (the files to edit; resolved, so messages name them),
    in an installed wheel the copy it ships."""
    env = os.environ.get("INFNET_SEARCH_SPACES")
    return Path(env) if env else Path(str(files("infnet") / "search_spaces")).resolve()


def available() -> list[str]:
    """Names of the spaces in :func:`search_space_dir`."""
    return sorted(p.stem for p in search_space_dir().glob("*.yaml"))


def resolve_path(name_or_path: str | os.PathLike) -> Path:
    """``implicit`` -> ``<search_space_dir>/implicit.yaml``; a path to a ``.yaml`` file is used as is."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text).expanduser().resolve()
    else:
        path = search_space_dir() / f"{text}.yaml"
    if not path.is_file():
        raise SearchSpaceError(f"search space '{text}' not found ({path}); available: {', '.join(available()) or 'none'}")
    return path


def load_search_space(name_or_path: str | os.PathLike, check: bool = True) -> SearchSpace:
    """Read and validate a search-space file; with ``check``, also check it against the training
    config composed with its ``base_overrides`` (:meth:`SearchSpace.check`)."""
    path = resolve_path(name_or_path)
    try:
        spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as exc:  # noqa: BLE001 - any YAML error becomes a clear SearchSpaceError
        raise SearchSpaceError(f"{path}: not a readable YAML file: {exc}") from None
    space = parse_search_space(spec, name=path.stem, source=str(path))
    if check:
        # lazy: Hydra's compose API (the report reads spaces without it)
        from infnet.compose import compose

        try:
            cfg = compose(list(space.base_overrides))
        except Exception as exc:  # noqa: BLE001 - Hydra's error, attributed to the file
            raise space.error("base_overrides", f"{type(exc).__name__}: {exc}") from None
        space.check(cfg)
    return space


def parse_search_space(spec: Any, name: str, source: str = "") -> SearchSpace:
    """Validate a search-space mapping (the YAML content) and build the :class:`SearchSpace`."""
    where = source or name

    def fail(key: str, message: str) -> SearchSpaceError:
        return SearchSpaceError(f"{where}: {key}: {message}")

    if not isinstance(spec, dict):
        raise fail("<top>", "expected a mapping with 'params' (and optionally 'base_overrides', 'description')")
    if unknown := set(spec) - _TOP_FIELDS:
        raise fail("<top>", f"unknown field(s) {sorted(unknown)}; allowed: {sorted(_TOP_FIELDS)}")
    overrides = spec.get("base_overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise fail("base_overrides", "expected a list of Hydra overrides like 'method=implicit'")
    raw = spec.get("params")
    if not isinstance(raw, dict) or not raw:
        raise fail("params", "expected a non-empty mapping of config key -> distribution")
    params: list[Param] = []
    for key, body in raw.items():
        params.append(_parse_param(str(key), body, {p.name: p for p in params}, fail))
    return SearchSpace(name, tuple(params), tuple(overrides), str(spec.get("description") or ""), source, spec)


def _parse_param(key: str, body: Any, earlier: dict[str, Param], fail: Callable[[str, str], SearchSpaceError]) -> Param:
    fixed = key.startswith(FIXED_PREFIXES) and key not in PER_TRIAL_DATA_KEYS
    if "." not in key or "/" in key or fixed or key in FIXED_KEYS:
        raise fail(key, "expected a dotted training-config key such as 'method.inner_steps' that is not fixed per sweep "
                        f"(data.* but {', '.join(PER_TRIAL_DATA_KEYS)}, tracking.*, {', '.join(FIXED_KEYS)} are set with base_overrides or on the command line)")
    if not isinstance(body, dict):
        raise fail(key, "expected a mapping like {type: int, low: 1, high: 20}")
    if unknown := set(body) - _PARAM_FIELDS:
        raise fail(key, f"unknown field(s) {sorted(unknown)}; allowed: {sorted(_PARAM_FIELDS)}")
    kind = body.get("type")
    if kind not in TYPES:
        raise fail(key, f"unknown distribution type {kind!r}; expected one of {TYPES}")
    when = _parse_when(key, body.get("when"), earlier, fail)
    if kind == "categorical":
        if set(body) & {"low", "high", "log", "step"}:
            raise fail(key, "categorical takes 'choices', not low/high/log/step")
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail(key, "categorical needs a non-empty list 'choices'")
        for c in choices:
            if not _is_scalar(c) and not (isinstance(c, list) and all(_is_scalar(x) for x in c)):
                raise fail(key, f"choice {c!r} must be a scalar or a list of scalars")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise fail(key, f"duplicate choices in {choices}")
        return Param(key, kind, choices=tuple(choices), when=when)
    if "choices" in body:
        raise fail(key, f"{kind} takes low/high, not 'choices'")
    low, high, step, log = body.get("low"), body.get("high"), body.get("step"), body.get("log", False)
    number = int if kind == "int" else (int, float)
    for label, v in (("low", low), ("high", high)):
        if not isinstance(v, number) or isinstance(v, bool) or not math.isfinite(v):
            raise fail(key, f"{label}={v!r} must be a finite {'integer' if kind == 'int' else 'number'}")
    if low > high:
        raise fail(key, f"low={low} > high={high}")
    if not isinstance(log, bool):
        raise fail(key, f"log={log!r} must be true or false")
    if log and low <= 0:
        raise fail(key, f"log=true needs low > 0 (got low={low})")
    if step is not None:
        if not isinstance(step, number) or isinstance(step, bool) or step <= 0:
            raise fail(key, f"step={step!r} must be a positive {'integer' if kind == 'int' else 'number'}")
        if log and (kind == "float" or step != 1):
            raise fail(key, "step cannot be combined with log=true")
    return Param(key, kind, low=low, high=high, log=log, step=step, when=when)


def _parse_when(
    key: str, when: Any, earlier: dict[str, Param], fail: Callable[[str, str], SearchSpaceError]
) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if when is None:
        return ()
    if not isinstance(when, dict) or not when:
        raise fail(key, "'when' must map an earlier categorical parameter to its allowed values")
    out = []
    for ref, allowed in when.items():
        parent = earlier.get(ref)
        if parent is None:
            raise fail(key, f"'when' refers to unknown parameter '{ref}' (it must be declared above '{key}')")
        if parent.type != "categorical":
            raise fail(key, f"'when' refers to '{ref}', which is not categorical")
        values = allowed if isinstance(allowed, list) else [allowed]
        if bad := [v for v in values if v not in parent.choices]:
            raise fail(key, f"'when' values {bad} are not choices of '{ref}' {list(parent.choices)}")
        encoded = {parent.optuna_choices()[parent.choices.index(v)] for v in values}
        out.append((str(ref), tuple(sorted(encoded, key=str))))
    return tuple(out)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def override_key(override: str) -> str:
    """The config key (or group) a Hydra override sets: ``+method.lam=2`` -> ``method.lam``."""
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """``base`` then ``overrides``, dropping base entries whose key the user overrides."""
    keys = {override_key(o) for o in overrides}
    return [o for o in base if override_key(o) not in keys] + list(overrides)


__all__ = ["Param", "SearchSpace", "SearchSpaceError", "load_search_space", "merge_overrides", "override_key", "parse_search_space",
           "search_space_dir"]
