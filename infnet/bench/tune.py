"""Costs and benefits of ``python -m infnet.tune``: overhead, parallel scaling, search efficiency.

    python -m infnet.bench tune overhead   [--data synthetic_mlc] [--reps 3] [--extra k=v ...]
    python -m infnet.bench tune scaling    [--samples 8] [--extra k=v ...]
    python -m infnet.bench tune efficiency [--data bibtex --root ../shared/data/mulan] [--samples 16] [--seeds 0 1 2]
    python -m infnet.bench tune startup    [--data bibtex --root ../shared/data/mulan] [--samples 5]

overhead
    One fixed configuration (the data's defaults, ``method=implicit``, one torch thread, no pretraining
    cache) run by ``python -m infnet.train`` and as the single trial of ``python -m infnet.tune`` (a
    one-point search space), alternating, ``--reps`` times. Ratio 1 is the trial's time inside Tune
    (``time_total_s``: MLflow child run, per-epoch checkpoint and report included) over the same run's
    time inside the ``infnet.train`` process (``main_with_tracking``, MLflow included). Ratio 2 is
    end to end: both commands' wall time, Python start-up and Ray start-up included.
scaling
    The same sweep (random search, no early stopping, so the work does not depend on the order in which
    trials finish) with ``tune.max_concurrent`` 1 and 2, one CPU per trial; and 1 trial at a time with
    2 CPUs (2 torch threads) as the other way to use both cores.
efficiency
    TPE + ASHA against random search without early stopping, same trial budget, several search seeds,
    each sweep with its own data/pretraining cache (trials of one sweep share CE pretrainings; no sweep
    reuses another's). For each sweep: the best dev F1 among completed trials, the compute (sum of trial time inside
    Tune) spent until a completed trial first reached 99% of that sweep's own best, and until it
    reached 99% of the best dev F1 any sweep of the same seed found (the common target).
startup
    How a trial gets its dataset, measured as the results table's ``startup_seconds`` (from Tune having
    the trial's actor up to its first training step), ``--samples`` trials one at a time, each in a
    fresh actor (as every trial on a node that has not run one yet): from the Ray object store (what
    ``python -m infnet.tune`` does: the driver loads the data once and ships it), loaded by the trial
    from the Parquet cache in ``data.cache_dir`` (a path shared by the nodes), and parsed by the trial
    (``data.cache=false``: what each trial would pay without either). The trials run the real trainable
    (MLflow child run included) for 2 epochs, without the pretraining cache, under a plain ``Tuner``
    (no searcher, no scheduler) since ``run_sweep`` always ships the dataset.

Each sweep is ``infnet.tune.run_sweep`` in this process on one shared local Ray runtime; MLflow and
Tune results go under ``--out`` (default ``bench_out/tune``). Prints Markdown tables and the commands.
Ray runs its workers at niceness 15 by default; here they run at 0 (``RAY_worker_niceness``) like the
``infnet.train`` process they are compared with, so that other load on the machine treats both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from ray import tune

from infnet.data import load_data
from infnet.tune import prepare, run_sweep
from infnet.tune.child_runs import ChildRuns
from infnet.tune.driver import open_parent, start_ray
from infnet.tune.results import startup_seconds
from infnet.tune.trainable import BASE_KEY, TrialSettings, train_trial

ONE_POINT = "base_overrides: [method=implicit]\nparams: {method.solver: {type: categorical, choices: [cg]}}\n"
STRATEGIES = {"tpe+asha": ["tune.searcher=tpe", "tune.scheduler=asha"], "random": ["tune.searcher=random", "tune.scheduler=none"]}


def data_overrides(args: argparse.Namespace) -> list[str]:
    return [f"data={args.data}", *([f"data.root={args.root}"] if args.root else []), *args.extra]


def sweep(overrides: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run one sweep in this process; returns its summary and its results table rows."""
    summary = run_sweep(prepare(overrides))
    return summary, pq.read_table(summary["results_path"]).to_pylist()


def timed(cmd: list[str]) -> tuple[float, dict[str, Any]]:
    """Wall seconds of a command and the JSON object on its last stdout line."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


IN_PROCESS_TRAIN = """
import json, sys, time
from infnet.compose import compose
from infnet.train import main_with_tracking
start = time.perf_counter()
result = main_with_tracking(compose(sys.argv[1:]))
print(json.dumps({**result, "run_seconds": time.perf_counter() - start}))
"""


def overhead(args: argparse.Namespace, out: Path) -> str:
    space = out / "one_point.yaml"
    space.write_text(ONE_POINT)
    fixed = [*data_overrides(args), "method=implicit", "trainer.num_threads=1", "trainer.pretrain_cache=false"]
    tracking = f"tracking.uri=sqlite:///{out / 'mlflow.db'}"
    rows = []
    for rep in range(args.reps):
        train_wall, train = timed([sys.executable, "-m", "infnet.train", *fixed, tracking])
        _, inproc = timed([sys.executable, "-c", IN_PROCESS_TRAIN, *fixed, tracking])
        tune_wall, summary = timed([sys.executable, "-m", "infnet.tune", *fixed, tracking, f"search_space={space}",
                                    "tune.num_samples=1", "tune.scheduler=none", f"tune.storage_path={out / 'runs'}",
                                    f"tune.name=overhead-{time.strftime('%H%M%S')}-{rep}"])
        (trial,) = pq.read_table(summary["results_path"]).to_pylist()
        rows.append({"train_cli_wall": train_wall, "train_run": inproc["run_seconds"], "train_loop": train["train_seconds"],
                     "tune_cli_wall": tune_wall, "tune_trial": trial["wall_seconds"], "tune_loop": trial["train_seconds"]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return "\n".join([
        f"| measure (median of {len(rows)}) | infnet.train | infnet.tune trial | ratio |",
        "|---|---|---|---|",
        f"| run inside its process (training + MLflow [+ Tune reports, checkpoints]) | {med['train_run']:.1f} s | {med['tune_trial']:.1f} s | **{med['tune_trial'] / med['train_run']:.3f}** |",
        f"| training loop only (`train_seconds`) | {med['train_loop']:.1f} s | {med['tune_loop']:.1f} s | {med['tune_loop'] / med['train_loop']:.3f} |",
        f"| whole command, wall (incl. Python and Ray start-up) | {med['train_cli_wall']:.1f} s | {med['tune_cli_wall']:.1f} s | {med['tune_cli_wall'] / med['train_cli_wall']:.3f} |",
    ])


def scaling(args: argparse.Namespace, out: Path) -> str:
    base = [*data_overrides(args), "tune.searcher=random", "tune.scheduler=none", f"tune.num_samples={args.samples}",
            f"tune.storage_path={out / 'runs'}", f"tracking.uri=sqlite:///{out / 'mlflow.db'}"]
    variants = {"1 at a time, 1 CPU each": ["tune.max_concurrent=1", "tune.cpus_per_trial=1"],
                "2 at a time, 1 CPU each": ["tune.max_concurrent=2", "tune.cpus_per_trial=1"],
                "1 at a time, 2 CPUs (2 threads)": ["tune.max_concurrent=1", "tune.cpus_per_trial=2"]}
    lines = ["| variant | sweep wall | sum of trial times | mean trial time | wall vs 1×1 |", "|---|---|---|---|---|"]
    first = None
    for name, extra in variants.items():
        summary, rows = sweep([*base, *extra, f"tune.name=scaling-{time.strftime('%H%M%S')}"])
        trial_times = [r["wall_seconds"] for r in rows]
        first = first or summary["wall_seconds"]
        lines.append(f"| {name} | {summary['wall_seconds']:.0f} s | {sum(trial_times):.0f} s | {statistics.mean(trial_times):.1f} s "
                     f"| {summary['wall_seconds'] / first:.2f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def compute_to_reach(rows: list[dict[str, Any]], target: float) -> float | None:
    """Trial seconds (all trials, overlapping ones included) spent until a completed trial first had
    ``dev_metric`` >= ``target``; None if none did."""
    hits = [r["finished_at"] for r in rows if r["status"] == "completed" and r["dev_metric"] >= target]
    if not hits:
        return None
    when = min(hits)
    return sum(max(0.0, min(when, r["finished_at"]) - (r["finished_at"] - r["wall_seconds"])) for r in rows)


def efficiency(args: argparse.Namespace, out: Path) -> str:
    base = [*data_overrides(args), f"search_space={args.space}", f"tune.num_samples={args.samples}",
            f"tune.max_concurrent={args.concurrent}", f"tune.storage_path={out / 'runs'}", f"tracking.uri=sqlite:///{out / 'mlflow.db'}"]
    results: dict[tuple[str, int], tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for seed in args.seeds:
        for strategy, extra in STRATEGIES.items():
            name = f"eff-{args.data}-{strategy}-s{seed}-{time.strftime('%H%M%S')}"
            own_cache = f"data.cache_dir={out / 'cache' / name}"  # no pretraining reused from another sweep
            results[strategy, seed] = sweep([*base, *extra, f"tune.seed={seed}", f"tune.name={name}", own_cache])
            s = results[strategy, seed][0]
            print(f"{strategy} seed {seed}: best dev {s['best_dev_metric']:.2f} test {s['best_test_metric']:.2f} "
                  f"({s['num_completed']} completed, {s['num_stopped']} stopped) {s['wall_seconds']:.0f}s", file=sys.stderr, flush=True)
    lines = [("| strategy | seed | best dev F1 | its test F1 | trials completed / stopped / errored | total trial compute | "
              "compute to 99% of own best | compute to 99% of the seed's best | sweep wall |"), "|---|---|---|---|---|---|---|---|---|"]
    for (strategy, seed), (s, rows) in results.items():
        common = max(results[k, seed][0]["best_dev_metric"] for k in STRATEGIES)
        own, shared = compute_to_reach(rows, 0.99 * s["best_dev_metric"]), compute_to_reach(rows, 0.99 * common)
        lines.append(f"| {strategy} | {seed} | {s['best_dev_metric']:.2f} | {s['best_test_metric']:.2f} | {s['num_completed']} / "
                     f"{s['num_stopped']} / {s['num_errored']} | {sum(r['wall_seconds'] for r in rows):.0f} s | {own:.0f} s | "
                     f"{'not reached' if shared is None else f'{shared:.0f} s'} | {s['wall_seconds']:.0f} s |")
    for strategy in STRATEGIES:
        best = [results[strategy, s][0]["best_dev_metric"] for s in args.seeds]
        total = [sum(r["wall_seconds"] for r in results[strategy, s][1]) for s in args.seeds]
        lines.append(f"| **{strategy}** | mean | {statistics.mean(best):.2f} | | | {statistics.mean(total):.0f} s | | | |")
    return "\n".join(lines)


def startup_trials(overrides: list[str], ship: bool, samples: int) -> list[float]:
    """``startup_seconds`` of ``samples`` trials of the one-point sweep ``overrides``, the dataset shipped
    through the object store (``ship``) or loaded by each trial."""
    sweep, parent = open_parent(prepare(overrides))
    runs = ChildRuns(sweep.tracking_uri, sweep.experiment, sweep.parent_run_id, sweep.name, parent.experiment_id)
    data = load_data(sweep.cfg.data) if ship else None
    trainable = tune.with_resources(tune.with_parameters(train_trial, data=data, space=sweep.space, settings=TrialSettings(runs, sweep.metric.key)),
                                    {"cpu": 1})
    point = {p.name: p.choices[0] for p in sweep.space.params}  # the one point of ONE_POINT
    tune.Tuner(trainable, param_space={BASE_KEY: sweep.training_config(), **point},
               tune_config=tune.TuneConfig(num_samples=samples, max_concurrent_trials=1),
               run_config=tune.RunConfig(name=sweep.name, storage_path=sweep.storage_path, verbose=0)).fit()
    parent.end()
    return [startup_seconds(t) for t in tune.ExperimentAnalysis(sweep.path).trials]


def startup(args: argparse.Namespace, out: Path) -> str:
    space = out / "one_point.yaml"
    space.write_text(ONE_POINT)
    base = [*data_overrides(args), f"search_space={space}", "trainer.max_epochs=2", "method.pretrain_epochs=1",
            "trainer.pretrain_cache=false", "tracking.log_model=false", f"data.cache_dir={out / 'cache'}",
            f"tune.storage_path={out / 'runs'}", f"tracking.uri=sqlite:///{out / 'mlflow.db'}"]
    variants = {"object store (the driver loads once)": (True, []),
                "Parquet cache (each trial loads from data.cache_dir)": (False, []),
                "no cache (each trial parses the files)": (False, ["data.cache=false"])}
    lines = ["| dataset reaches the trial through | startup median | min | max |", "|---|---|---|---|"]
    for i, (name, (ship, extra)) in enumerate(variants.items()):  # the first one also fills the Parquet cache
        times = startup_trials([*base, *extra, f"tune.name=startup-{i}-{time.strftime('%H%M%S')}"], ship, args.samples)
        lines.append(f"| {name} | {statistics.median(times):.2f} s | {min(times):.2f} s | {max(times):.2f} s |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m infnet.bench tune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["overhead", "scaling", "efficiency", "startup"])
    ap.add_argument("--data", default="synthetic_mlc")
    ap.add_argument("--root", default=None, help="data.root (directory of the MULAN files)")
    ap.add_argument("--space", default="implicit", help="search space (efficiency)")
    ap.add_argument("--samples", type=int, default=16, help="trials per sweep (scaling, efficiency, startup)")
    ap.add_argument("--concurrent", type=int, default=2, help="tune.max_concurrent (efficiency)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="search seeds (efficiency)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (overhead)")
    ap.add_argument("--extra", nargs="*", default=[], help="Hydra overrides for every run")
    ap.add_argument("--out", default="bench_out/tune")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_worker_niceness", "0")  # inherited by the Ray runtimes started below
    if args.what != "overhead":
        start_ray()  # one local runtime shared by every sweep of this benchmark
    table = {"overhead": overhead, "scaling": scaling, "efficiency": efficiency, "startup": startup}[args.what](args, out)
    print(f"command: python -m infnet.bench tune {' '.join(argv)}")
    print(table)
