"""Sweep reports: ``python -m infnet.report <results path | sweep folder | MLflow parent run id> ...``.

After a sweep (automatically, from :mod:`infnet.tune.driver`) or on demand, a self-contained HTML
report plus one PNG per figure: the winning configuration, Optuna's optimisation history, parameter
importances, parallel coordinates, contour and slice of inner steps × energy capacity, learning curves
of the top trials, the hypergradient solver's diagnostics over training, and a method comparison (mean
± sd across seeds, gain of ``implicit`` over each baseline) when several sweeps are reported together.
Modules, one job each:

- :mod:`infnet.report.sources`: results files / sweep folders / MLflow runs -> :class:`ResultSet`
- :mod:`infnet.report.history`: per-epoch metrics of the trials from their MLflow child runs
- :mod:`infnet.report.study`: an Optuna study rebuilt from a results table (for Optuna's plots)
- :mod:`infnet.report.compare`: method comparison across sweeps and seeds
- :mod:`infnet.report.figures`: which figures a sweep shows (Optuna's plots, per-epoch curves)
- :mod:`infnet.report.charts`: figures drawn by plotly (interactive) and matplotlib (PNG)
- :mod:`infnet.report.tables`: the report's tables as text cells
- :mod:`infnet.report.build`: assembles a report, writes it, logs it to the sweep's parent run
- :mod:`infnet.report.render`: the Jinja2 template in ``dashboards/`` -> ``report.html``

Optuna, plotly, matplotlib, pandas and MLflow are imported only when a report is built.
"""

from infnet.report.build import build_report

__all__ = ["build_report"]
