"""A restored sweep's search state brought in step with Tune's trials (infnet.tune.search.ResumableSearch):
Tune saves its trials and the search state as separate files, so a lost head can leave a search state older
or newer than the trials. Real Tune search objects (SearchGenerator, ConcurrencyLimiter, OptunaSearch),
saved and restored through Tune's own save_to_dir / restore_from_dir; trials are Tune's Trial objects.
The sweep-level check (a killed driver resumed with an older search state) is in test_tune_resume.py."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import ray.cloudpickle as pickle  # how Tune writes tuner.pkl
from omegaconf import OmegaConf
from ray.tune.experiment import Experiment, Trial
from ray.tune.search import ConcurrencyLimiter

from infnet.search_space import load_search_space
from infnet.tune.search import (
    METRIC,
    MODE,
    ResumableSearch,
    make_search,
    optuna_searcher,
    trial_outcome,
)
from infnet.tune.trainable import BASE_KEY

State = optuna.trial.TrialState
SPACE = load_search_space("implicit", check=False)


def trainable(config: dict) -> None:
    """Never run: Tune's Experiment needs a trainable to name."""


def new_search(max_concurrent: int | None = 2, searcher: str = "tpe") -> ResumableSearch:
    """A sweep's search algorithm as ``tuner.pkl`` holds it (before Tune sets it up)."""
    cfg = OmegaConf.create({"searcher": searcher, "seed": 0, "startup_trials": 2, "points_to_evaluate": [],
                            "max_concurrent": max_concurrent})
    return make_search(cfg, SPACE, study_name="study")


def unpickled(fresh: bytes) -> ResumableSearch:
    """The search algorithm of ``tuner.pkl``'s bytes ``fresh``, given the metric as ``tune.run`` gives it."""
    search = pickle.loads(fresh)
    search.set_search_properties(METRIC, MODE, {BASE_KEY: {}})
    return search


def started(fresh: bytes, num_samples: int) -> ResumableSearch:
    """A new sweep's search algorithm, set up as ``tune.run`` sets it up."""
    search = unpickled(fresh)
    search.add_configurations([Experiment("sweep", trainable, num_samples=num_samples, config={BASE_KEY: {}})])
    return search


def restored(fresh: bytes, folder: Path) -> ResumableSearch:
    """What a resuming driver holds: the search unpickled from ``tuner.pkl``, then Tune's saved state loaded."""
    search = unpickled(fresh)
    search.restore_from_dir(str(folder))
    return search


def finish(search: ResumableSearch, trial: Trial, value: float, completed: bool = True) -> None:
    """Trial ``trial`` ends with ``value`` as Tune reports it to the search and records it."""
    result = {METRIC: value, "completed": int(completed), "training_iteration": 3}
    search.on_trial_complete(trial.trial_id, result)
    trial.update_last_result(result)
    trial.set_status(Trial.TERMINATED)


def params_of(trial: Trial) -> dict:
    return {k: v for k, v in trial.config.items() if k != BASE_KEY}


def study_trials(search: ResumableSearch) -> list[optuna.trial.FrozenTrial]:
    return optuna_searcher(search)._ot_study.get_trials(deepcopy=False)


def test_a_search_state_older_than_the_trials_takes_them_in(tmp_path: Path) -> None:
    fresh = pickle.dumps(new_search(searcher="random"))
    search = started(fresh, 4)
    search.reconcile([])  # a fresh sweep's first step changes nothing
    t1, t2 = search.next_trial(), search.next_trial()
    assert search.next_trial() is None  # two at a time
    search.save_to_dir(str(tmp_path), session_str="old")  # the search state the lost head had uploaded
    finish(search, t1, 50.0)
    t2.set_status(Trial.ERROR)
    search.on_trial_complete(t2.trial_id, error=True)
    t3 = search.next_trial()
    search.on_trial_result(t3.trial_id, {METRIC: 10.0, "training_iteration": 1})

    old = restored(fresh, tmp_path)
    assert old.unreconciled and old._counter == 2
    changes = old.reconcile([t1, t2, t3])
    assert old._counter == 3 and old.searcher.live_trials == {t3.trial_id}
    assert f"the Optuna study did not know trial {t3.trial_id}: taken in with its parameters" in changes
    assert any(c.startswith(f"trial {t1.trial_id} had ended (TERMINATED)") for c in changes)
    assert any(c.startswith(f"trial {t2.trial_id} had ended (ERROR)") for c in changes)
    old.on_trial_result(t3.trial_id, {METRIC: 20.0, "training_iteration": 2})  # Ray's OptunaSearch: KeyError
    old.on_trial_complete(t3.trial_id, {METRIC: 30.0, "completed": 0, "training_iteration": 2})  # a scheduler stopped it
    s1, s2, s3 = study_trials(old)
    assert (s1.state, s1.value, s2.state) == (State.COMPLETE, 50.0, State.FAIL)  # as Tune recorded them
    assert s3.state == State.PRUNED and s3.intermediate_values == {2: 20.0}  # the taken-in trial, told as any trial
    assert s3.params == params_of(t3)  # the parameters the trial ran with, not a new sample
    t4 = old.next_trial()
    assert params_of(t4) != params_of(t3)  # the restored sampler was reseeded: it does not draw t3 again
    assert old.next_trial() is None and old.is_finished()  # 4 trials, as asked


def test_a_search_state_newer_than_the_trials_replaces_the_lost_ones(tmp_path: Path) -> None:
    fresh = pickle.dumps(new_search())
    search = started(fresh, 4)
    search.reconcile([])
    t1, t2 = search.next_trial(), search.next_trial()
    finish(search, t1, 50.0)
    t3 = search.next_trial()  # Tune's saved trials never saw t3 (and still had t1 running)
    search.save_to_dir(str(tmp_path), session_str="new")
    t1.set_status(Trial.RUNNING)

    new = restored(fresh, tmp_path)
    assert new._counter == 3 and new.searcher.live_trials == {t2.trial_id, t3.trial_id}
    new.reconcile([t1, t2])
    assert new._counter == 2 and new.searcher.live_trials == {t1.trial_id, t2.trial_id}
    lost = next(t for t in study_trials(new) if t.number == 2)
    assert lost.state == State.FAIL  # t3 went with the head: Optuna does not wait for it
    assert new.next_trial() is None  # t1 and t2 hold the two slots, no lost trial does
    new.on_trial_complete(t1.trial_id, {METRIC: 55.0, "completed": 1})  # Tune re-runs t1: its second outcome is ignored
    assert study_trials(new)[0].value == 50.0
    finish(new, t2, 60.0)
    t4, t5 = new.next_trial(), new.next_trial()
    assert t4 is not None and t5 is not None and new.next_trial() is None  # t4 and t5 take t3's place: 4 trials
    assert new.is_finished()


def test_a_restored_search_is_not_finished_before_it_is_reconciled(tmp_path: Path) -> None:
    fresh = pickle.dumps(new_search(max_concurrent=None))
    search = started(fresh, 3)
    search.reconcile([])
    trials = [search.next_trial() for _ in range(3)]
    for trial, value in zip(trials, (40.0, 50.0, 60.0)):
        finish(search, trial, value)
    search.save_to_dir(str(tmp_path), session_str="new")
    assert search.is_finished()

    new = restored(fresh, tmp_path)
    assert not new.is_finished()  # Tune would end the sweep before its first step, one trial short
    new.reconcile(trials[:2])
    assert not new.is_finished() and new.next_trial() is not None and new.is_finished()

    unreached = restored(fresh, tmp_path)  # no callback reconciled it: Tune's next ask ends the wait, never a hang
    assert not unreached.is_finished() and unreached.next_trial() is None and unreached.is_finished()


def test_trial_outcome() -> None:
    assert trial_outcome(None, error=True) == (State.FAIL, None)
    assert trial_outcome({METRIC: 50.0, "completed": 1}, error=False) == (State.COMPLETE, 50.0)
    assert trial_outcome({METRIC: 50.0, "completed": 0}, error=False) == (State.PRUNED, None)  # a scheduler stopped it
    assert trial_outcome(None, error=False) == (State.PRUNED, None)
    assert trial_outcome({METRIC: math.nan, "completed": 1}, error=False) == (State.FAIL, None)


def test_max_concurrent() -> None:
    assert new_search(max_concurrent=3).searcher.max_concurrent == 3
    assert not isinstance(new_search(max_concurrent=0).searcher, ConcurrencyLimiter)  # no limit, as Tune's 0
    with pytest.raises(ValueError, match="tune.max_concurrent=-1"):
        new_search(max_concurrent=-1)
