"""Which figures a sweep's section shows, and from which data: Optuna's plots of the rebuilt study, and
per-epoch curves of the top trials (learning curves, hypergradient solver diagnostics).

A figure that cannot be drawn (too few completed trials, no per-epoch history, a method without a
solver) is kept with a note saying why, so the report always has the same sections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from infnet.report.charts import Figure, line_panels, optuna_figure
from infnet.task_metric import TaskMetric

#: The parameters the contour and slice plots focus on: inner solver steps x energy capacity.
FOCUS = ("method.inner_steps", "model.energy.label_hidden", "model.energy.depth")
#: Per-epoch panels of the top trials: (metric key or key prefix, panel title or None for the key, transform);
#: the learning curves' first panel is the dev metric's (:func:`learning_panels`).
LOSSES = (("train/loss/", None, None),)
SOLVER = (("train/solver/residual", "log10 relative residual", "log10"), ("train/solver/iterations", "solver iterations", None),
          ("train/solver/fallback", "fell back (fraction of steps)", None),
          ("train/solver/negative_curvature", "negative curvature (fraction)", None),
          ("train/hypergrad/norm", "hypergradient norm", None))


def focus_pair(study: Any, params: Sequence[str], focus: Sequence[str]) -> list[str]:
    """The contour's two parameters: the first two ``focus`` keys the sweep searched, else the two
    most important parameters, else the first two."""
    import optuna

    chosen = [p for p in focus if p in params][:2]
    if len(chosen) == 2:
        return chosen
    try:
        return list(optuna.importance.get_param_importances(study))[:2]
    except Exception:  # noqa: BLE001 - too few trials for importances
        return list(params[:2])


def learning_panels(metric: TaskMetric) -> tuple[tuple[str, str | None, str | None], ...]:
    """The learning-curve panels: the dev metric (percent) and the training losses."""
    return ((f"dev/{metric.key}", metric.dev_label(), "percent"), *LOSSES)


def optuna_figures(study: Any, params: Sequence[str], metric: TaskMetric, focus: Sequence[str] = FOCUS) -> list[Figure]:
    """Optuna's plots of the sweep's study (objective: the dev ``metric``, %)."""
    from optuna.trial import TrialState

    complete = len(study.get_trials(states=(TrialState.COMPLETE,)))
    curves = any(t.intermediate_values for t in study.trials)
    pair = focus_pair(study, params, focus)
    sliced = [p for p in focus if p in params] or pair
    target = {"target_name": metric.dev_label()}
    dev = f"Dev {metric.label}"
    specs = [  # (Optuna plot, figure name, title, caption, completed trials needed, arguments)
        ("plot_optimization_history", "optimization_history", "Optimisation history",
         f"{dev} of every completed trial in the order they finished, and the best so far.", 1, target),
        ("plot_intermediate_values", "dev_metric_per_epoch", f"{dev} per epoch, every trial",
         f"Best {dev.lower()} so far after each epoch (what ASHA judged); trials that stop early were stopped by ASHA.", 0, {}),
        ("plot_param_importances", "param_importances", "Parameter importances",
         f"How much of the variation of {dev.lower()} each parameter explains (Optuna's default evaluator, PED-ANOVA).", 2, target),
        ("plot_parallel_coordinate", "parallel_coordinate", "Parallel coordinates",
         f"Each line is a completed trial through its sampled values, coloured by {dev.lower()}.", 2, target),
        ("plot_contour", "contour_focus", f"Contour: {' × '.join(pair) or 'two parameters'}",
         f"{dev} interpolated over two parameters (inner solver steps and energy capacity when the sweep searched them).", 2,
         {"params": pair, **target}),
        ("plot_slice", "slice_focus", f"Slice: {', '.join(sliced) or 'parameters'}",
         f"{dev} against each parameter separately (inner steps and energy capacity when searched).", 1, {"params": sliced, **target}),
    ]
    figures = []
    for plot, name, title, caption, needed, kwargs in specs:
        reason = (f"needs {needed} completed trials ({complete} completed)" if complete < needed
                  else "no per-epoch values" if plot == "plot_intermediate_values" and not curves
                  else "needs two searched parameters" if plot == "plot_contour" and len(pair) < 2 else None)
        figures.append(Figure(name, title, caption, note=f"not drawn: {reason}") if reason
                       else optuna_figure(study, plot, name, title, caption, **kwargs))
    return figures


def panels(history: Any, labels: dict[str, str], spec: Sequence[tuple[str, str | None, str | None]]) -> Any:
    """The long table ``line_panels`` draws: the metrics of ``spec`` for the trials of ``labels`` (trial id
    -> legend label), transformed (``percent``: x100, ``log10``: of positive values) and retitled."""
    import pandas as pd

    mine = history[history["trial_id"].isin(list(labels))]
    parts = []
    for key, title, transform in spec:
        part = mine[mine["metric"].str.startswith(key) if key.endswith("/") else mine["metric"] == key].copy()
        if transform == "percent":
            part["value"] = 100 * part["value"]
        elif transform == "log10":
            part = part[part["value"] > 0]
            part["value"] = np.log10(part["value"])
        part["metric"] = title or part["metric"]
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    return frame.assign(trial=frame["trial_id"].map(labels))


def curve_figures(history: Any, labels: dict[str, str], metric: TaskMetric) -> list[Figure]:
    """Learning curves (dev ``metric`` and losses) and solver diagnostics over training of the trials ``labels``
    (the top trials)."""
    figures = []
    for name, title, caption, spec in (
        ("learning_curves", "Learning curves of the top trials",
         f"Dev {metric.label} and training losses per epoch of the best trials.", learning_panels(metric)),
        ("solver_diagnostics", "Hypergradient solver over training",
         ("Per-epoch means over the outer steps: relative residual of the linear solve, iterations, share of steps that fell back "
          "(non-finite or diverged solve), share that met negative curvature, and the hypergradient's norm."), SOLVER),
    ):
        frame = panels(history, labels, spec)
        figures.append(line_panels(frame, name, title, caption) if len(frame)
                       else Figure(name, title, caption, note="not drawn: no such per-epoch metrics were logged by these trials"))
    return figures


__all__ = ["FOCUS", "curve_figures", "optuna_figures"]
