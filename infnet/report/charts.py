"""Figures of a report, each drawn twice by a library's own plotting functions: interactive (plotly,
embedded in the HTML) and static (matplotlib, saved as PNG).

- :func:`optuna_figure`: one of Optuna's plots, ``optuna.visualization.<plot>`` and
  ``optuna.visualization.matplotlib.<plot>`` on the same study and arguments;
- :func:`line_panels`: per-epoch curves of several trials, one panel per metric
  (``plotly.express.line`` with facets; ``pandas.DataFrame.plot`` per panel);
- :func:`error_bars`: a mean ± sd bar chart (``plotly.express.bar``; ``pandas.DataFrame.plot.bar``).

A figure that cannot be drawn keeps the reason in ``note`` instead of failing the report.
"""

from __future__ import annotations

import io
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PNG_DPI = 110
HEIGHT = 420  # pixels of an interactive figure whose layout sets no height
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass
class Figure:
    """A drawn figure: ``html`` (a plotly ``<div>`` without plotly.js), ``png`` bytes, or the ``note``
    saying why it is missing; ``file``: where the report stores the PNG (relative to ``report.html``)."""

    name: str
    title: str
    caption: str
    html: str = ""
    png: bytes = b""
    note: str = ""
    file: str = ""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend unless the process already chose one."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(name: str, title: str, caption: str, interactive: Callable[[], Any], static: Callable[[], Any]) -> Figure:
    """Run both drawings (a plotly figure; a matplotlib figure) into a :class:`Figure`; an exception
    becomes its ``note``."""
    plt = pyplot()
    figure, mpl = Figure(name, title, caption), None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for its matplotlib plots, pandas noise
            fig = interactive()
            fig.update_layout(title=None, margin={"t": 30})
            figure.html = fig.to_html(full_html=False, include_plotlyjs=False, config=PLOTLY_CONFIG, default_height=HEIGHT)
            mpl = static()
            buffer = io.BytesIO()
            mpl.savefig(buffer, format="png", dpi=PNG_DPI, bbox_inches="tight")
            figure.png = buffer.getvalue()
    except Exception as exc:  # noqa: BLE001 - a figure that cannot be drawn must not lose the report
        figure.html, figure.png, figure.note = "", b"", f"not drawn: {type(exc).__name__}: {exc}"
    finally:
        if mpl is not None:
            plt.close(mpl)
    return figure


def _figure_of(axes: Any) -> Any:
    """The matplotlib figure of what an Optuna matplotlib plot returns (an Axes or an array of them)."""
    return axes.figure if hasattr(axes, "figure") else axes.flat[0].figure


def optuna_figure(study: Any, plot: str, name: str, title: str, caption: str, **kwargs: Any) -> Figure:
    """Optuna's ``plot`` (e.g. ``plot_optimization_history``) of ``study``, interactive and static."""
    import optuna.visualization as interactive
    import optuna.visualization.matplotlib as static

    return draw(name, title, caption, lambda: getattr(interactive, plot)(study, **kwargs),
                lambda: _figure_of(getattr(static, plot)(study, **kwargs)))


def line_panels(frame: Any, name: str, title: str, caption: str, x: str = "epoch") -> Figure:
    """Curves of ``frame`` (long format: ``trial``, ``metric``, ``x``, ``value``), one line per trial and
    one panel per metric (two panels a row)."""
    metrics = list(dict.fromkeys(frame["metric"]))
    rows = math.ceil(len(metrics) / 2)

    def interactive() -> Any:
        import plotly.express as px

        fig = px.line(frame, x=x, y="value", color="trial", facet_col="metric", facet_col_wrap=2, markers=True,
                      category_orders={"metric": metrics}, facet_row_spacing=min(0.5 / rows, 0.12), height=80 + 260 * rows)
        fig.update_yaxes(matches=None, showticklabels=True, title=None)
        fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
        return fig

    def static() -> Any:
        fig, axes = pyplot().subplots(rows, 2, figsize=(11, 3.2 * rows), squeeze=False)
        for ax, metric in zip(axes.flat, metrics, strict=False):
            panel = frame[frame["metric"] == metric].pivot_table(index=x, columns="trial", values="value")
            panel.plot(ax=ax, marker="o", title=metric, legend=ax is axes.flat[0])
        for ax in axes.flat[len(metrics):]:
            ax.set_visible(False)
        fig.tight_layout()
        return fig

    return draw(name, title, caption, interactive, static)


def error_bars(frame: Any, name: str, title: str, caption: str, x: str, y: str, error: str, label: str) -> Figure:
    """Bars of ``frame[y]`` by ``frame[x]`` with ``frame[error]`` as ± error bars, y axis titled ``label``."""

    def interactive() -> Any:
        import plotly.express as px

        return px.bar(frame, x=x, y=y, error_y=error, labels={y: label}, text_auto=".2f", height=360)

    def static() -> Any:
        ax = frame.plot.bar(x=x, y=y, yerr=error, legend=False, capsize=4, rot=0, figsize=(max(4, 1.4 * len(frame)), 3.6))
        ax.set_ylabel(label)
        return ax.figure

    return draw(name, title, caption, interactive, static)


__all__ = ["Figure", "draw", "error_bars", "line_panels", "optuna_figure", "pyplot"]
