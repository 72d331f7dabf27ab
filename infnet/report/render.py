"""Render a :class:`~infnet.report.build.Report` with the Jinja2 template kept in ``dashboards/`` and
write ``report.html`` (plotly.js inlined: one self-contained file) and ``figures/<sweep>/<name>.png``.

The template is ``$INFNET_REPORT_TEMPLATE`` if set, else the package's ``infnet/report/report.html.j2``: in a
checkout a link to ``dashboards/report.html.j2`` (a team edits that file to change the report's look), in an
installed wheel the copy it ships; ``--template`` picks another one.
"""

from __future__ import annotations

import base64
import os
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from infnet.sweep_layout import REPORT_FILE

if TYPE_CHECKING:
    from infnet.report.build import Report

TEMPLATE_NAME = "report.html.j2"


def template_path(template: str | os.PathLike | None = None) -> Path:
    """The template to render with (see the module docstring); raises if it does not exist."""
    env = os.environ.get("INFNET_REPORT_TEMPLATE")
    path = Path(template or env or str(files("infnet.report") / TEMPLATE_NAME))
    if not path.is_file():
        raise FileNotFoundError(f"report template {path} not found (pass --template or set INFNET_REPORT_TEMPLATE)")
    return path


def render_html(report: Report, template: str | os.PathLike | None = None) -> str:
    """The report as one HTML document."""
    import jinja2
    from plotly.offline import get_plotlyjs

    path = template_path(template)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(path.parent), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["b64"] = lambda data: base64.b64encode(data).decode()
    return env.get_template(path.name).render(report=report, plotly_js=get_plotlyjs())


def write_report(report: Report, folder: Path, template: str | os.PathLike | None = None) -> list[str]:
    """Write the figures' PNGs (at their ``file``) and ``report.html`` into ``folder``; returns the paths
    written, relative to it."""
    files = [f.file for f in report.figures() if f.png]
    for figure in report.figures():
        if figure.png:
            (folder / figure.file).parent.mkdir(parents=True, exist_ok=True)
            (folder / figure.file).write_bytes(figure.png)
    (folder / REPORT_FILE).write_text(render_html(report, template), encoding="utf-8")
    return [*files, REPORT_FILE]


__all__ = ["render_html", "template_path", "write_report"]
