"""Search algorithm (Optuna through Ray's ``OptunaSearch``) and trial scheduler (ASHA) of a sweep.

ASHA-stopped trials: Ray's ``OptunaSearch`` tells Optuna that a trial stopped by a scheduler is
COMPLETE with its last, partial-budget value. :class:`InfnetOptunaSearch` tells Optuna such a trial
is PRUNED instead (a trial is complete only when its final result carries ``completed=1``). TPE then
models its "good" group from fully trained trials only and ranks pruned trials after every complete
one (among themselves by how far they got, then by their last reported dev metric), which is what ASHA
decided about them. Errored trials are FAIL (Ray's behaviour), ignored by the samplers.

This module imports Ray and Optuna; import it lazily.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from omegaconf import OmegaConf
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from infnet.search_space import SearchSpace

#: what Optuna and ASHA optimise: the best dev value (%) of the task's selection metric (infnet.task_metric)
METRIC, MODE = "dev_metric", "max"
SEARCHERS = ("tpe", "random", "gp")


class InfnetOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that reports scheduler-stopped trials as PRUNED (see the module docstring)."""

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        stopped = bool(result) and not error and not result.get("completed") and trial_id not in self._completed_trials
        if not stopped:
            super().on_trial_complete(trial_id, result, error)
            return
        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)


def make_sampler(name: str, seed: int, startup_trials: int, conditional: bool) -> optuna.samplers.BaseSampler:
    """A seeded Optuna sampler: ``tpe`` (multivariate; grouped when the space is conditional), ``random``, ``gp``."""
    if name == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # group=True is "experimental"
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials, multivariate=True, group=conditional)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials)
    raise ValueError(f"tune.searcher={name!r}: expected one of {SEARCHERS}")


def make_searcher(tune_cfg: Any, space: SearchSpace, study_name: str) -> InfnetOptunaSearch:
    """The define-by-run Optuna searcher of ``space``, seeded, with ``tune.points_to_evaluate`` first."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    points = OmegaConf.to_container(tune_cfg.points_to_evaluate, resolve=True) or None
    sampler = make_sampler(tune_cfg.searcher, int(tune_cfg.seed), int(tune_cfg.startup_trials), space.conditional)
    return InfnetOptunaSearch(space, metric=METRIC, mode=MODE, sampler=sampler, study_name=study_name, points_to_evaluate=points)


def make_scheduler(tune_cfg: Any, main_epochs: int) -> ASHAScheduler | None:
    """ASHA on ``dev_metric`` over main-phase epochs (``max_t`` = the epochs after the method's CE
    pretraining; rungs at ``grace_period`` * ``reduction_factor``^k), or None (FIFO: every trial runs
    its full budget)."""
    if tune_cfg.scheduler == "none":
        return None
    if tune_cfg.scheduler != "asha":
        raise ValueError(f"tune.scheduler={tune_cfg.scheduler!r}: expected asha | none")
    return ASHAScheduler(time_attr="main_epoch", max_t=main_epochs, grace_period=max(1, min(main_epochs, int(tune_cfg.asha.grace_period))),
                         reduction_factor=float(tune_cfg.asha.reduction_factor))


__all__ = ["METRIC", "MODE", "InfnetOptunaSearch", "make_scheduler", "make_searcher"]
