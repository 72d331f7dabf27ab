"""An Optuna study rebuilt from a sweep's results table, so that Optuna's own plots can draw it.

Each trial becomes a frozen trial (``optuna.trial.create_trial``) with the sampled values of its
active parameters, the distributions of the recorded search space (widened to any value sampled
outside it, e.g. a ``tune.points_to_evaluate`` point), and its state as the sweep told Optuna:
``completed`` -> COMPLETE with value ``dev_metric`` (best dev metric %, maximised), ``stopped`` (by ASHA) ->
PRUNED, ``error`` and ``interrupted`` -> FAIL. Intermediate values (``{epoch: dev metric %}``, the curve
ASHA judged) come from the per-epoch history when there is one. Without a recorded space the
distributions are inferred from the column types and values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from infnet.report.sources import ResultSet
from infnet.search_space import Param

STATES = {"completed": "COMPLETE", "stopped": "PRUNED"}


def _observed(rs: ResultSet, name: str) -> list[Any]:
    return [v for v in rs.table.column(name).to_pylist() if v is not None]


def _match(value: Any, choices: list[Any]) -> Any:
    """``value`` as one of ``choices`` (the table stores mixed-type choices as strings), else itself."""
    return next((c for c in choices if c == value or str(c) == str(value)), value)


def _from_param(p: Param, observed: list[Any]) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if p.type == "categorical":
        choices = p.optuna_choices()
        extra = [v for v in observed if _match(v, choices) not in choices]
        return CategoricalDistribution(choices + list(dict.fromkeys(extra)))
    low, high = min([p.low, *observed]), max([p.high, *observed])
    widened = (low, high) != (p.low, p.high)
    if p.type == "int":
        return IntDistribution(int(low), int(high), log=p.log, step=1 if widened else int(p.step or 1))
    return FloatDistribution(float(low), float(high), log=p.log, step=None if widened else p.step)


def _inferred(kind: Any, observed: list[Any]) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if pa.types.is_integer(kind) and observed:
        return IntDistribution(min(observed), max(observed))
    if pa.types.is_floating(kind) and observed:
        low, high = min(observed), max(observed)
        return FloatDistribution(low, high, log=low > 0 and high / low >= 100)
    return CategoricalDistribution(list(dict.fromkeys(observed)) or [None])


def distributions(rs: ResultSet) -> dict[str, Any]:
    """One Optuna distribution per searched parameter (see the module docstring)."""
    by_name = {p.name: p for p in rs.space.params} if rs.space else {}
    schema = rs.table.schema
    return {name: _from_param(by_name[name], _observed(rs, name)) if name in by_name
            else _inferred(schema.field(name).type, _observed(rs, name)) for name in rs.params}


def _trial(row: Mapping[str, Any], dists: Mapping[str, Any], curve: Mapping[int, float]) -> Any:
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    params = {}
    for name, dist in dists.items():
        value = row.get(name)
        if value is None:
            continue  # an inactive conditional parameter
        params[name] = _match(value, list(dist.choices)) if isinstance(dist, CategoricalDistribution) else value
    dev = row.get("dev_metric")
    state = TrialState[STATES.get(row["status"], "FAIL")]
    if state == TrialState.COMPLETE and (dev is None or not math.isfinite(dev)):
        state = TrialState.FAIL
    steps = {int(k): float(v) for k, v in curve.items() if math.isfinite(v)}
    if not steps and dev is not None and row.get("epochs") and math.isfinite(dev):
        steps = {int(row["epochs"]): float(dev)}
    return create_trial(
        state=state,
        value=float(dev) if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: dists[k] for k in params},
        intermediate_values=steps if state != TrialState.FAIL else {},
        user_attrs={"trial_id": row["trial_id"], "status": row["status"]},
    )


def build_study(rs: ResultSet, curves: Mapping[str, Mapping[int, float]] | None = None) -> Any:
    """The sweep as an in-memory ``optuna.Study`` (direction maximize, objective the dev metric %), trials
    numbered in the order they finished; ``curves``:
    ``{trial_id: {epoch: dev metric %}}``. Rows Optuna rejects are left out (listed in the study's user
    attribute ``skipped``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", study_name=rs.name)
    dists, skipped = distributions(rs), []
    for row in sorted(rs.rows(), key=lambda r: (r.get("finished_at") is None, r.get("finished_at") or 0.0)):
        try:
            study.add_trial(_trial(row, dists, (curves or {}).get(row["trial_id"], {})))
        except ValueError as exc:
            skipped.append(f"{row['trial_id']}: {exc}")
    study.set_user_attr("skipped", skipped)
    return study


__all__ = ["build_study", "distributions"]
