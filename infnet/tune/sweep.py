"""What a sweep is (composed config, search space, experiment location) and how it is persisted.

``prepare(overrides)`` turns command-line overrides into a :class:`Sweep`:

1. compose ``infnet/conf/tune.yaml`` with the overrides of ``search_space`` and ``tune.*``; find the
   experiment folder ``<tune.storage_path>/<tune.name>`` (or ``tune.resume``);
2. if that folder holds ``infnet_sweep.json``, the sweep exists: it is resumed with its stored
   config, search space and MLflow parent run; from the command line it takes only where things are
   now (``RESUME_SETTINGS``: a new head's tracking URI or Ray address), its other overrides are ignored;
3. otherwise load the search space, compose again with its ``base_overrides`` placed before the
   command line's overrides (so the command line wins), and check the space against that config.

``infnet_sweep.json`` is written next to Tune's experiment state before the first trial starts.
Storage may be a local path (made absolute) or a URI that ``pyarrow.fs`` understands (``s3://``...).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from omegaconf import DictConfig, OmegaConf

from infnet.config import validate
from infnet.search_space import (
    SearchSpace,
    load_search_space,
    merge_overrides,
    override_key,
    parse_search_space,
)
from infnet.sweep_layout import (
    STATE_FILE,
    absolute_storage,
    filesystem,
    join,
    read_state,
)
from infnet.task_metric import TaskMetric, metric_of
from infnet.tracking import resolve_uri

FORMAT = "infnet-sweep-2"  # 2: trials report the task-neutral ``dev_metric`` (1: ``dev_f1``)

ComposeFn = Callable[[Sequence[str], str], DictConfig]
#: What a resumed sweep takes from the command line: where the store and the cluster are now (a sweep
#: resumed on a new head after the old one died), never what the sweep is.
RESUME_SETTINGS = ("tracking.uri", "tune.address", "tune.num_cpus", "tune.resume_errored", "tune.gpu_wait_report_s")


class SweepError(ValueError):
    """A sweep that cannot be started or resumed as asked."""


@dataclass(frozen=True)
class Sweep:
    """A sweep ready to run: ``cfg`` (the composed tune config, with ``tune.name`` and an absolute
    ``tune.storage_path``), its search space, the experiment folder ``path`` (local path or URI), the
    resolved MLflow ``tracking_uri``, and the MLflow ``parent_run_id`` (persisted; None until the
    driver opens it for a new sweep). ``resumed``: the sweep was found in its folder."""

    cfg: DictConfig
    space: SearchSpace
    path: str
    tracking_uri: str
    parent_run_id: str | None = None
    resumed: bool = False
    resume_settings: tuple[str, ...] = ()  # RESUME_SETTINGS taken from the command line on resume

    @property
    def name(self) -> str:
        return str(self.cfg.tune.name)

    @property
    def storage_path(self) -> str:
        return str(self.cfg.tune.storage_path)

    @property
    def experiment(self) -> str:
        return str(self.cfg.tracking.experiment)

    @cached_property
    def metric(self) -> TaskMetric:
        """What the sweep selects trials on: its task's metric (F1, or accuracy for POS)."""
        return metric_of(self.cfg.data)

    def training_config(self) -> dict[str, Any]:
        """The resolved training config every trial starts from (no ``tune``/``search_space`` keys)."""
        base = OmegaConf.to_container(self.cfg, resolve=True)
        for key in ("tune", "search_space"):
            base.pop(key, None)
        if base["trainer"].get("num_threads") is None:
            base["trainer"]["num_threads"] = max(1, int(self.cfg.tune.cpus_per_trial))
        return base

    def with_parent(self, run_id: str) -> Sweep:
        return replace(self, parent_run_id=run_id)


def default_compose(overrides: Sequence[str], config_name: str) -> DictConfig:
    from infnet.compose import compose  # lazy: Hydra's compose API

    return compose(overrides, config_name)


def prepare(overrides: Sequence[str] = (), compose_fn: ComposeFn = default_compose) -> Sweep:
    """The sweep that ``python -m infnet.tune <overrides>`` runs (new or resumed); see the module docstring."""
    first = compose_fn([o for o in overrides if override_key(o) == "search_space" or override_key(o).startswith(("tune.", "tracking."))],
                       "tune")
    given = {key: OmegaConf.select(first, key) for key in RESUME_SETTINGS if key in {override_key(o) for o in overrides}}
    if first.tune.resume:
        path = absolute_storage(str(first.tune.resume)).rstrip("/")
        stored = read_state(path)
        if stored is None:
            raise SweepError(f"tune.resume={first.tune.resume}: no {STATE_FILE} in {path}: not an infnet sweep")
        check_tune_state(path)
        return from_state(stored, path, given)
    storage = absolute_storage(str(first.tune.storage_path))
    if first.tune.name:
        path = join(storage, str(first.tune.name))
        if (stored := read_state(path)) is not None:
            check_tune_state(path)
            return from_state(stored, path, given)
    space = load_search_space(str(first.search_space), check=False)
    try:
        cfg = compose_fn(merge_overrides(space.base_overrides, overrides), "tune")
    except Exception as exc:  # noqa: BLE001 - the command line composed above: a bad base override
        raise space.error("base_overrides", f"{type(exc).__name__}: {exc}") from None
    validate(cfg)  # the base config itself, before any sampled value
    space.check(cfg)
    name = str(cfg.tune.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}")
    OmegaConf.update(cfg, "tune.name", name)
    OmegaConf.update(cfg, "tune.storage_path", storage)
    return Sweep(cfg, space, join(storage, name), resolve_uri(cfg.tracking.uri))


#: Tune's state files in a sweep folder, by what they hold; Tune restores the newest of each (by name)
TUNE_STATE_FILES = {"experiment_state-": "the trials", "search_gen_state-": "the trial counter",
                    "searcher-state-": "Optuna's study"}


def newest_tune_state(path: str) -> dict[str, str | None]:
    """The file name Tune restores for each kind of ``TUNE_STATE_FILES`` in sweep folder ``path`` (None: none)."""
    import pyarrow.fs

    fs, root = filesystem(path)
    names = [i.base_name for i in fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))]
    return {prefix: max((n for n in names if n.startswith(prefix)), default=None) for prefix in TUNE_STATE_FILES}


def unreadable(name: str, data: bytes) -> str:
    """Why Tune's state file ``name`` with content ``data`` does not read back (cut short), or '' if it does."""
    import ray.cloudpickle  # lazy: only a resume pays for importing Ray here

    try:
        json.loads(data) if name.startswith("experiment_state-") else ray.cloudpickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - cut short: any decoding or unpickling error
        return f"{name} does not read back ({type(exc).__name__}: {exc})"
    return ""


def check_tune_state(path: str) -> None:
    """Raise ``SweepError`` if Tune's saved state in sweep folder ``path`` is there but cannot be restored: a
    file missing or cut short (a head lost while Tune wrote it, on storage that writes in place, or during
    its first upload). Tune would log the failure and start the sweep over in the same folder; a sweep with
    no state yet (killed before Tune first saved it) starts afresh, as it should."""
    newest = newest_tune_state(path)
    if newest["experiment_state-"] is None:
        return
    fs, root = filesystem(path)
    for prefix, name in newest.items():
        if name is None:
            problem = f"no {prefix}* file"
        else:
            with fs.open_input_stream(join(root, name)) as src:
                problem = unreadable(name, src.readall())
        if problem:
            raise SweepError(f"{path}: Tune's saved state of {TUNE_STATE_FILES[prefix]} is not whole: {problem}, likely "
                             "written when the sweep's head was lost. Tune would start the sweep over; it is not resumed. "
                             "Its finished trials stay in MLflow (the sweep's parent run) and in their folders; run a "
                             "new sweep under another tune.name")


def from_state(state: dict[str, Any], path: str, given: dict[str, Any] | None = None) -> Sweep:
    """The sweep stored in ``state`` (the content of ``infnet_sweep.json`` found in ``path``), with the
    ``RESUME_SETTINGS`` values ``given`` on the command line (e.g. a moved MLflow server's URI)."""
    if state.get("format") == "infnet-sweep-1":
        raise SweepError(f"{join(path, STATE_FILE)}: this sweep was started by an older infnet whose trials reported dev_f1 "
                         "(now dev_metric); its Tune state cannot resume under this version: resume it with the version "
                         "that started it (its results and report stay readable: python -m infnet.report " + path + ")")
    if state.get("format") != FORMAT:
        raise SweepError(f"{join(path, STATE_FILE)}: unknown format {state.get('format')!r}")
    cfg = OmegaConf.create(state["config"])
    OmegaConf.update(cfg, "tune.storage_path", path.rsplit("/", 1)[0])
    OmegaConf.update(cfg, "tune.name", path.rsplit("/", 1)[1])
    given = given or {}
    for key, value in given.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    tracking_uri = resolve_uri(cfg.tracking.uri) if "tracking.uri" in given else state["tracking_uri"]
    space_state = state["search_space"]
    space = parse_search_space(space_state["spec"], space_state["name"], space_state["source"])
    return Sweep(cfg, space, path, tracking_uri, state["parent_run_id"], resumed=True, resume_settings=tuple(given))


def write_state(sweep: Sweep) -> None:
    """Persist ``sweep`` (config, space, tracking, parent run) as ``<path>/infnet_sweep.json``."""
    assert sweep.parent_run_id is not None
    state = {
        "format": FORMAT,
        "config": OmegaConf.to_container(sweep.cfg, resolve=True),
        "search_space": {"name": sweep.space.name, "source": sweep.space.source, "spec": sweep.space.spec},
        "tracking_uri": sweep.tracking_uri,
        "experiment": sweep.experiment,
        "parent_run_id": sweep.parent_run_id,
    }
    fs, root = filesystem(sweep.path)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(join(root, STATE_FILE)) as f:
        f.write(json.dumps(state, indent=1).encode())


__all__ = ["RESUME_SETTINGS", "Sweep", "SweepError", "prepare", "write_state"]
