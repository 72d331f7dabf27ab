"""Distributed hyperparameter search: ``python -m infnet.tune`` (Ray Tune + Optuna + MLflow).

Ray Tune runs trials of ``infnet.train.run_training`` (the code path of ``python -m infnet.train``),
Optuna (define-by-run over a ``search_spaces/*.yaml`` file) proposes their configs, ASHA stops poor
trials early on the dev metric reported every epoch (F1, or accuracy for POS), and MLflow records one parent run per sweep with
one child run per trial. Modules, one job each:

- :mod:`infnet.tune.sweep`: overrides -> :class:`Sweep` (new or resumed), ``infnet_sweep.json``
- :mod:`infnet.tune.driver`: ``run_sweep`` (Ray, Tuner new/restored, results, summary)
- :mod:`infnet.tune.trainable`: the trial function run in Ray workers
- :mod:`infnet.tune.search`: Optuna searcher (its state brought in step with the trials on resume) and ASHA scheduler
- :mod:`infnet.tune.callbacks`: driver-side callbacks (close MLflow runs, progress lines, reconcile a resumed search)
- :mod:`infnet.tune.checkpoint_fallback`: on resume, a trial whose remembered checkpoint is gone resumes
  from the newest one left on storage
- :mod:`infnet.tune.child_runs`: MLflow child runs found by ``ray_trial_id``, status vocabulary
- :mod:`infnet.tune.results`: the Parquet results table

Ray, Optuna and MLflow are imported only when a sweep runs.
"""

from infnet.tune.driver import run_sweep
from infnet.tune.sweep import Sweep, SweepError, prepare

__all__ = ["Sweep", "SweepError", "prepare", "run_sweep"]
