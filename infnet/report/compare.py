"""Method comparison over one or more sweeps: which method wins, and by how much over each baseline.

Every sweep searches one method (its ``method.name``) on one data set. A trial's seed is its own
``trainer.seed`` when the sweep searches the seed, else the sweep's ``trainer.seed``; so the seeds of a
method come from several sweeps (``python -m infnet.tune search_space=ce trainer.seed=1``, ...) or
from one sweep that searches ``trainer.seed``.

The metric is the data set's task metric (:mod:`infnet.task_metric`: F1 for multi-label and NER, accuracy
for POS). Per (data, method, seed), model selection is the sweep's: the completed trial with the best dev
metric. A method's row reports mean ± sd across its seeds of that trial's dev metric, test metric (multi-label:
at the dev-tuned threshold) and test F1 at 0.5 (multi-label), and the config of the best of them (its best
config). The gain of the reference method (``implicit`` by default) over a baseline is the test metric
difference reference − baseline: paired by seed (mean ± sd of the per-seed differences) over the seeds both have, else the
difference of the means (unpaired, no sd). A gain is a claim only with at least ``MIN_SEEDS`` paired seeds:
it then says whether it exceeds the seed noise (|mean| > 2 standard errors of the paired differences);
with fewer seeds, or unpaired, it says "no claim". Each method also reports its sweeps' compute: the
trial-seconds of all its trials (``wall_seconds``, the time each trial spent in Tune), so that sweeps of
different methods are compared at the same compute rather than the same trial count.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from infnet.report.sources import ResultSet
from infnet.task_metric import TaskMetric

SEED_KEY = "trainer.seed"
#: paired seeds a gain needs before the report makes a claim about it
MIN_SEEDS = 3


@dataclass(frozen=True)
class Stat:
    """Mean and sample sd (None with a single value) of ``n`` values."""

    mean: float
    sd: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))

    def __str__(self) -> str:
        return f"{self.mean:.2f}" if self.sd is None else f"{self.mean:.2f} ± {self.sd:.2f}"


@dataclass(frozen=True)
class Gain:
    """Test metric of the reference minus a baseline's: paired over ``stat.n`` common seeds or unpaired."""

    stat: Stat
    paired: bool

    @property
    def exceeds_noise(self) -> bool | None:
        """Whether |mean| > 2 standard errors of the paired differences; None without ``MIN_SEEDS`` paired seeds."""
        if not self.paired or self.stat.n < MIN_SEEDS or self.stat.sd is None:
            return None
        return abs(self.stat.mean) > 2 * self.stat.sd / self.stat.n**0.5

    def __str__(self) -> str:
        sign = "+" if self.stat.mean >= 0 else ""
        if not self.paired:
            return f"unpaired: no claim ({sign}{self.stat.mean:.2f})"
        if self.exceeds_noise is None:
            return f"{'one seed' if self.stat.n == 1 else f'{self.stat.n} seeds'}: no claim"
        verdict = "exceeds seed noise" if self.exceeds_noise else "within seed noise"
        return f"{sign}{self.stat} (paired, {self.stat.n} seeds): {verdict}"


@dataclass(frozen=True)
class MethodResult:
    """One method on one data set (selecting on ``metric``): the selected trial per seed and their summary."""

    data: str
    method: str
    metric: TaskMetric
    selected: dict[int | None, dict[str, Any]]  # seed -> the selected trial's row
    trials: int
    best_config: dict[str, Any]
    gain: Gain | None = None
    compute_seconds: float = 0.0  # trial-seconds of all its trials

    def stat(self, column: str) -> Stat | None:
        """``column`` over the selected trials; None where no trial has it (``test_f1_at_0.5`` on NER)."""
        values = [r[column] for r in self.selected.values() if r.get(column) is not None]
        return Stat.of(values) if values else None


def _seed(rs: ResultSet, row: dict[str, Any]) -> int | None:
    return row[SEED_KEY] if row.get(SEED_KEY) is not None else rs.seed


def _completed(row: dict[str, Any]) -> bool:
    return row["status"] == "completed" and row.get("dev_metric") is not None and row.get("test_metric") is not None


def gain(reference: MethodResult, baseline: MethodResult) -> Gain:
    """``reference`` − ``baseline`` test metric (see the module docstring)."""
    common = sorted(set(reference.selected) & set(baseline.selected), key=str)
    if common:
        return Gain(Stat.of([reference.selected[s]["test_metric"] - baseline.selected[s]["test_metric"] for s in common]), True)
    return Gain(Stat(reference.stat("test_metric").mean - baseline.stat("test_metric").mean, None, 0), False)


def compare(sets: Sequence[ResultSet], reference: str = "implicit") -> list[MethodResult]:
    """One :class:`MethodResult` per (data, method) with a completed trial, best test metric first within a
    data set; baselines carry their ``gain`` from ``reference`` when it ran on the same data."""
    selected: dict[tuple[str, str], dict[int | None, dict[str, Any]]] = defaultdict(dict)
    trials: dict[tuple[str, str], int] = defaultdict(int)
    compute: dict[tuple[str, str], float] = defaultdict(float)
    params: dict[tuple[str, str], tuple[str, ...]] = {}
    metrics: dict[tuple[str, str], TaskMetric] = {}
    for rs in sets:
        key = (rs.data, rs.method)
        metrics[key] = rs.metric
        trials[key] += rs.table.num_rows
        compute[key] += sum(r.get("wall_seconds") or 0.0 for r in rs.rows())
        params[key] = rs.params
        for row in filter(_completed, rs.rows()):
            seed = _seed(rs, row)
            if seed not in selected[key] or row["dev_metric"] > selected[key][seed]["dev_metric"]:
                selected[key][seed] = row
    results = {}
    for key, by_seed in selected.items():
        best = max(by_seed.values(), key=lambda r: r["dev_metric"])
        config = {k: best[k] for k in params[key] if k != SEED_KEY and best.get(k) is not None}
        results[key] = MethodResult(key[0], key[1], metrics[key], dict(by_seed), trials[key], config, compute_seconds=compute[key])
    for (data, method), result in results.items():
        ref = results.get((data, reference))
        if ref is not None and method != reference:
            results[data, method] = replace(result, gain=gain(ref, result))
    return sorted(results.values(), key=lambda r: (r.data, -r.stat("test_metric").mean))


__all__ = ["MIN_SEEDS", "Gain", "MethodResult", "Stat", "compare", "gain"]
