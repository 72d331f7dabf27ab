"""``python -m infnet.report SOURCE [SOURCE ...]``: build a sweep report (HTML + PNG figures).

Examples::

    python -m infnet.report tune_results/implicit-20260101-120000-ab12       # one sweep: written to its report/ folder
    python -m infnet.report tune_results/implicit-1/results.parquet tune_results/ce-1 --out reports/bibtex
    python -m infnet.report tune_results/                                     # every sweep below the folder
    python -m infnet.report 0123456789abcdef0123456789abcdef --tracking-uri http://10.0.0.1:5000

The last stdout line is one JSON object: ``report`` (the HTML's path), ``figures``, ``mlflow_run_id``
(the parent run the report was logged to, or null) and ``notes`` (figures that could not be drawn).
"""

from __future__ import annotations

import argparse
import json
import sys

from infnet.report.build import DEFAULT_OUT, build_report
from infnet.report.figures import FOCUS
from infnet.report.sources import SourceError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m infnet.report", description=__doc__.split("\n\n")[0].strip("`"),
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="a results.parquet file, a sweep folder, a folder of sweeps, or an MLflow parent run id")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: the one the sweep recorded; for a run id: sqlite:///./mlflow.db)")
    p.add_argument("--out", help=f"output folder (default: <sweep folder>/report for one sweep, else ./{DEFAULT_OUT})")
    p.add_argument("--reference", default="implicit", help="the method whose gain over each other method is reported (default: implicit)")
    p.add_argument("--top", type=int, default=5, help="trials in the learning-curve and solver plots (default: 5)")
    p.add_argument("--focus", nargs="+", default=list(FOCUS), metavar="KEY",
                   help="parameters of the contour (first two) and slice plots (default: %(default)s)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the report to the sweep's MLflow parent run")
    p.add_argument("--template", help="Jinja2 template (default: dashboards/report.html.j2)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        result = build_report(args.sources, out=args.out, tracking_uri=args.tracking_uri, reference=args.reference, top=args.top,
                              focus=args.focus, log_to_mlflow=not args.no_mlflow, template=args.template)
    except (SourceError, FileNotFoundError) as exc:
        sys.exit(f"infnet.report: {exc}")
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(f"Report: {result['report']}" + (f" (logged to MLflow run {result['mlflow_run_id']})" if result["mlflow_run_id"] else ""))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
