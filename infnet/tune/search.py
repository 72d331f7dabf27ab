"""Search algorithm (Optuna through Ray's ``OptunaSearch``) and trial scheduler (ASHA) of a sweep.

ASHA-stopped trials: Ray's ``OptunaSearch`` tells Optuna that a trial stopped by a scheduler is
COMPLETE with its last, partial-budget value. :class:`InfnetOptunaSearch` tells Optuna such a trial
is PRUNED instead (a trial is complete only when its final result carries ``completed=1``). TPE then
models its "good" group from fully trained trials only and ranks pruned trials after every complete
one (among themselves by how far they got, then by their last reported dev metric), which is what ASHA
decided about them. Errored trials are FAIL (Ray's behaviour), ignored by the samplers.

Resume: :class:`ResumableSearch` (the sweep's search algorithm) brings the restored search state in step
with Tune's trials, which may be from another moment (see its docstring).

This module imports Ray and Optuna; import it lazily.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import optuna
from omegaconf import OmegaConf
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter, SearchGenerator
from ray.tune.search.optuna import OptunaSearch
from ray.util import log_once

from infnet.search_space import SearchSpace

#: what Optuna and ASHA optimise: the best dev value (%) of the task's selection metric (infnet.task_metric)
METRIC, MODE = "dev_metric", "max"
SEARCHERS = ("tpe", "random", "gp")
log = logging.getLogger("infnet.tune")


class InfnetOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that reports scheduler-stopped trials as PRUNED (see the module docstring) and
    takes in trials Tune knows but its study does not (see :meth:`reconcile`)."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id not in self._ot_trials:  # a sweep started before reconcile existed, resumed from a stale state
            if log_once(f"infnet-unknown-trial-{trial_id}"):
                log.warning("Trial %s is unknown to the Optuna study (its saved state is older than the trials): "
                            "its results are not told to Optuna", trial_id)
        elif trial_id not in self._completed_trials:  # else the study saw it end, in a state newer than Tune's
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            log.warning("Optuna already has the outcome of trial %s, or never knew it: ignoring this one", trial_id)
            return
        state, value = trial_outcome(result, error)
        self._ot_study.tell(self._ot_trials[trial_id], value, state=state)
        self._completed_trials.add(trial_id)

    def adopt(self, trial_id: str, config: dict[str, Any]) -> None:
        """Add Tune's trial ``trial_id`` to the study as a running trial with the parameters in its ``config``
        (Optuna-encoded, as suggested), so that its results and outcome are told as any trial's."""
        fixed = optuna.trial.FixedTrial({n: config[n] for n in self._space.names if n in config})
        self._space(fixed)  # the define-by-run space gives the distributions of the trial's parameters
        self._ot_study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, params=fixed.params,
                                                           distributions=fixed.distributions))
        added = self._ot_study.get_trials(deepcopy=False)[-1]
        self._ot_trials[trial_id] = optuna.trial.Trial(self._ot_study, added._trial_id)

    def reconcile(self, trials: list[Any]) -> list[str]:
        """Bring the study in step with Tune's ``trials`` (``ray.tune.experiment.Trial``), the truth after
        a restore: a trial the study does not know is taken in (:meth:`adopt`) and the sampler reseeded (a
        sampler state older than the trials would otherwise draw the taken-in trials' parameters again); a
        trial Tune has finished is told its outcome; a study trial Tune does not know is told FAIL (it was
        lost with the head). Returns what changed."""
        unknown = [t for t in trials if t.trial_id not in self._ot_trials]
        for trial in unknown:
            self.adopt(trial.trial_id, trial.config)
        if unknown:
            self._ot_study.sampler.reseed_rng()
        changes = [f"the Optuna study did not know trial {t.trial_id}: taken in with its parameters" for t in unknown]
        for trial in trials:
            if trial.is_finished() and trial.trial_id not in self._completed_trials:
                error = trial.status == trial.ERROR
                self.on_trial_complete(trial.trial_id, None if error else trial.last_result, error)
                changes.append(f"trial {trial.trial_id} had ended ({trial.status}): its outcome told to the Optuna study")
        known = {t.trial_id for t in trials}
        for trial_id, ot_trial in self._ot_trials.items():
            if trial_id not in known and trial_id not in self._completed_trials:
                self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
                self._completed_trials.add(trial_id)
                changes.append(f"the Optuna study's trial {trial_id} is unknown to Tune (lost with the head): told FAIL")
        return changes


class ResumableSearch(SearchGenerator):
    """The sweep's search algorithm: Tune's ``SearchGenerator`` over the Optuna searcher (behind a
    ``ConcurrencyLimiter`` when the sweep limits concurrency), brought in step with Tune's trials on
    the first step after a restore (:meth:`reconcile`, called by ``callbacks.SearchReconciler``).

    Tune saves its trials (``experiment_state-*.json``) and the search state (``search_gen_state-*``,
    ``searcher-state-*``) as separate files and uploads them in the background; a head lost during an
    upload leaves them from different moments. A search state older than the trials crashed the resume
    (``KeyError`` in ``OptunaSearch.on_trial_result`` for a trial the study never saw: seen in CI, S3
    storage); one newer would count trials Tune lost, so the sweep ran fewer than ``num_samples`` and a
    lost trial held a concurrency slot for good. Until reconciled, :meth:`is_finished` is False, so a
    restored sweep takes its first step (where the callback reconciles) before Tune decides it is done."""

    def __init__(self, searcher: Any) -> None:
        super().__init__(searcher)
        self.unreconciled = True

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, unreconciled=True)  # unpickled = restored: reconcile again

    def is_finished(self) -> bool:
        return not self.unreconciled and super().is_finished()

    def next_trial(self) -> Any:
        if self.unreconciled:  # Tune asks for a trial before the callback reconciled this object: go on as Tune would
            log.warning("The resumed sweep's search state was not reconciled with its trials (no SearchReconciler on it)")
            self.unreconciled = False
        return super().next_trial()

    def reconcile(self, trials: list[Any]) -> list[str]:
        """Make the trial counter, the concurrency limiter's live trials and the Optuna study agree with
        Tune's ``trials`` (``ray.tune.experiment.Trial``: every trial of the sweep). Returns what changed."""
        changes = []
        if self._counter != len(trials):
            changes.append(f"the search counted {self._counter} trials, Tune has {len(trials)}: "
                           f"{max(0, self._total_samples - len(trials))} left to start")
            self._counter = len(trials)
        if isinstance(self.searcher, ConcurrencyLimiter):
            live = {t.trial_id for t in trials if not t.is_finished()}
            if self.searcher.live_trials != live:
                changes.append(f"the concurrency limiter's running trials {sorted(self.searcher.live_trials)} "
                               f"are now Tune's {sorted(live)}")
                self.searcher.live_trials, self.searcher.num_unfinished_live_trials = live, len(live)
        changes += optuna_searcher(self).reconcile(trials)
        self.unreconciled = False
        return changes


def optuna_searcher(search: Any) -> InfnetOptunaSearch:
    """The Optuna searcher inside ``search`` (a search algorithm and its wrappers)."""
    while not isinstance(search, InfnetOptunaSearch):
        search = search.searcher
    return search


def trial_outcome(result: dict[str, Any] | None, error: bool) -> tuple[optuna.trial.TrialState, float | None]:
    """Optuna state and value of a trial that ended with last ``result`` (None: none) or ``error``:
    FAIL on error or a non-finite metric, PRUNED without a final result carrying ``completed=1``
    (a scheduler stopped it), else COMPLETE with its ``dev_metric``."""
    states = optuna.trial.TrialState
    if error:
        return states.FAIL, None
    value = (result or {}).get(METRIC)
    if not result or not result.get("completed") or value is None:
        return states.PRUNED, None
    return (states.COMPLETE, float(value)) if math.isfinite(value) else (states.FAIL, None)


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


def make_search(tune_cfg: Any, space: SearchSpace, study_name: str) -> ResumableSearch:
    """The sweep's search algorithm: :func:`make_searcher`'s, at most ``tune.max_concurrent`` trials at once
    (null or 0: no limit, as Tune's ``max_concurrent_trials``)."""
    searcher, limit = make_searcher(tune_cfg, space, study_name), tune_cfg.max_concurrent
    if limit is not None and int(limit) < 0:
        raise ValueError(f"tune.max_concurrent={limit}: expected an integer >= 1, or null for no limit")
    return ResumableSearch(ConcurrencyLimiter(searcher, max_concurrent=int(limit)) if limit else searcher)


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


__all__ = ["METRIC", "MODE", "InfnetOptunaSearch", "ResumableSearch", "make_scheduler", "make_search", "make_searcher", "trial_outcome"]
