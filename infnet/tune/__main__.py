"""``python -m infnet.tune [overrides]``: run (or resume) a hyperparameter sweep.

Examples::

    python -m infnet.tune                                   # embedded default: synthetic data, implicit space
    python -m infnet.tune search_space=ce tune.num_samples=32 tune.max_concurrent=4
    python -m infnet.tune data=bibtex data.root=../shared/data/mulan tune.name=bibtex-implicit
    python -m infnet.tune tune.resume=tune_results/bibtex-implicit     # after an interruption
    python -m infnet.tune tune.address=auto tracking.uri=http://10.0.0.1:5000 tune.storage_path=/mnt/shared/tune

Progress goes to stderr; stdout ends with a short summary and, as its last line, one JSON object. Exit
status: 0 when the sweep is done, 2 on bad input, 3 when it was stopped (Ctrl-C, SIGTERM) before every trial
ended: its results so far are written, and the summary says how to resume it.
"""

from __future__ import annotations

import json
import logging
import sys
from importlib.resources import files
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from infnet.cli import parse_command_line, run_cli
from infnet.search_space import (
    SearchSpaceError,
    load_search_space,
    merge_overrides,
    override_key,
)
from infnet.task_metric import BY_KEY
from infnet.tune import prepare, run_sweep
from infnet.tune.sweep import RESUME_SETTINGS

#: exit status of a sweep stopped before its trials ended (Ctrl-C, SIGTERM): its results so far are written and
#: the last lines say how to resume it (bad input exits with 2)
STOPPED_STATUS = 3


def summary_text(summary: dict[str, Any]) -> str:
    """The human-readable end of a sweep: best trial, counts, where the results are, the MLflow UI."""
    best = summary["best_config"]
    lines = [(f"Trials: {summary['num_trials']} ({summary['num_completed']} completed, {summary['num_stopped']} stopped early, "
              f"{summary['num_errored']} errored, {summary['num_interrupted']} unfinished)")]
    if best is not None:
        test, label = summary["best_test_metric"], BY_KEY[summary["metric"]].label
        lines += [
            f"Best trial {summary['best_trial_id']} ({summary['best_trial_status']}): dev {label} {summary['best_dev_metric']:.2f}"
            + (f", test {label} {test:.2f}" if test is not None else ""),
            "  " + " ".join(f"{k}={v}" for k, v in best.items()),
        ]
    lines += [
        f"CE pretraining: computed {summary['pretrain_computed']}x, reused {summary['pretrain_hits']}x",
        f"Results: {summary['results_path']}",
        f"MLflow: experiment '{summary['mlflow_experiment']}', parent run {summary['mlflow_parent_run_id']} at {summary['mlflow_tracking_uri']}",
        f"Open the MLflow UI: {summary['mlflow_ui']}",
    ]
    if summary["unfinished"]:
        lines.append(f"Resume: {summary['resume_command']}")
    return "\n".join(lines)


def show_warnings() -> None:
    """Warnings of the project's loggers on stderr. Called after the config is composed: Hydra's
    ``job_logging: disabled`` (applied at every compose) sets the root level to ERROR and disables the
    loggers that exist by then."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name, logger in logging.root.manager.loggerDict.items():
        if name.split(".")[0] == "infnet" and isinstance(logger, logging.Logger):
            logger.disabled = False


def with_space_overrides(args: list[str]) -> list[str]:
    """The command line with the chosen search space's ``base_overrides`` inserted before its
    overrides (the command line's own keys win), so that Hydra checks the overrides against the config
    the sweep will run: ``search_space=spen method.inference_steps=30`` works without ``method=spen``."""
    overrides = [a for a in args if "=" in a or a.startswith("~")]
    chosen = [a.split("=", 1)[1] for a in overrides if override_key(a) == "search_space"]
    name = chosen[-1] if chosen else OmegaConf.load(str(files("infnet.conf") / "tune.yaml")).search_space
    try:
        base = load_search_space(name, check=False).base_overrides
    except SearchSpaceError:
        return args  # reported with its reason by prepare()
    extra = [o for o in merge_overrides(base, overrides) if o not in overrides]
    at = args.index(overrides[0]) if overrides else len(args)
    return [*args[:at], *extra, *args[at:]]


def main() -> None:
    sys.argv = [sys.argv[0], *with_space_overrides(sys.argv[1:])]
    # Hydra checks the overrides (and serves --help, --cfg)
    captured = parse_command_line("infnet.tune", "tune", lambda cfg: list(HydraConfig.get().overrides.task))
    if not captured:
        return
    sweep = prepare(captured[0])
    show_warnings()
    if sweep.resumed:
        taken = ", ".join(f"{k}={OmegaConf.select(sweep.cfg, k)}" for k in sweep.resume_settings) or "nothing"
        print(f"infnet.tune: resuming sweep {sweep.path} with its stored configuration; from the command line: {taken} "
              f"(only {', '.join(RESUME_SETTINGS)} can change on resume)", file=sys.stderr, flush=True)
    summary = run_sweep(sweep)
    print(summary_text(summary), flush=True)
    print(json.dumps(summary), flush=True)
    if summary["unfinished"]:
        sys.exit(STOPPED_STATUS)


if __name__ == "__main__":
    run_cli("infnet.tune", main)
