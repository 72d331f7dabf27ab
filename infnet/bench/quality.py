"""Side-by-side quality benchmark: every variant × every seed on the same data and budget.

    python -m infnet.bench quality --data bibtex --root ../shared/data/mulan --seeds 0 1 2 3 4 \\
        --variants ce ce_nodrop spen tu_gimpel seal implicit implicit_frozen --workers 2

    python -m infnet.bench quality --data conll2003 --root ../shared/data/ner/conll2003 --seeds 0 1 2 \
        --variants ce crf tu_gimpel seal implicit

Each run is ``infnet.train.run_training`` in its own process (one torch thread each), with model
selection on dev only. Prints, per variant, mean ± sd of the test metric (multi-label: example F1 at
the dev-tuned threshold; NER: span F1; POS: token accuracy), the dev metric, time, and the paired
difference to ``ce`` over seeds; writes every run to a Parquet table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from infnet.compose import compose
from infnet.train import run_training

#: Named variants: Hydra overrides on top of the data's defaults.
VARIANTS: dict[str, list[str]] = {
    "ce": ["method=ce"],
    "ce_nodrop": ["method=ce", "model.dropout=0.0"],
    "spen": ["method=spen"],
    "tu_gimpel": ["method=tu_gimpel"],
    "seal": ["method=seal"],
    "implicit": ["method=implicit"],
    "implicit_frozen": ["method=implicit", "method.freeze_energy=true"],
    "crf": ["method=crf"],  # sequence labelling only
    # the testbed study (data=synthetic_testbed; docs/results.md, "Can a learned energy carry structure?"):
    # gradient-based inference on the generator's own structure, an inference network trained on it
    # (frozen), implicit with the energy at the training inputs (the behaviour before this study), and
    # the setting the testbed's dev chose (more θ steps, a label-term rate it can use), with either label term
    "gbi_oracle": ["method=spen", "method.freeze_energy=true", "model.energy.oracle=1.0", "model.energy.global_scale=0.0"],
    "oracle": ["method=implicit", "method.freeze_energy=true", "model.energy.oracle=1.0", "model.energy.global_scale=0.0"],
    "implicit_old": ["method=implicit", "method.energy_data=train"],
    "implicit_testbed": ["method=implicit", "method.inner_steps=10", "method.solver=identity", "method.lr_label=3e-2"],
    "implicit_pairwise": ["method=implicit", "method.inner_steps=10", "method.solver=identity", "method.lr_label=3e-2",
                          "model.energy.pairwise=true", "model.energy.global_scale=0.0"],
}


def run_one(overrides: list[str]) -> dict[str, Any]:
    """Compose and run one configuration (in a worker process); returns its result row."""
    cfg = compose(overrides + ["trainer.num_threads=1"])
    start = time.perf_counter()
    result = run_training(cfg, verbose=False)
    result["wall_seconds"] = time.perf_counter() - start
    result["overrides"] = " ".join(overrides)
    return result


def mean_of(runs: list[dict[str, Any]], key: str, fmt: str) -> str:
    """Mean of ``key`` over the runs that have it, formatted; '-' when none has it."""
    values = [r[key] for r in runs if r.get(key) is not None]
    return format(statistics.mean(values), fmt) if values else "-"


def summarise(rows: list[dict[str, Any]], variants: list[str], reference: str = "ce") -> str:
    """Markdown table: mean ± sd per variant and paired (same seed) differences against ``reference``."""
    by = {v: {r["seed"]: r for r in rows if r["variant"] == v} for v in variants}
    m = "acc" if any("test_acc" in r for r in rows) else "f1"
    dev, test = f"dev_{m}", f"test_{m}"
    lines = [
        f"| variant | seeds | {dev} | {test} (mean ± sd) | test F1@0.5 | Δ test vs {reference} (paired, mean ± sd) "
        "| label/local ∇y ratio | E(gold)−E(pred) | s/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(xs: list[float]) -> str:
        return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"

    for v in variants:
        runs = list(by[v].values())
        if not runs:
            continue
        ref = by.get(reference, {})
        diffs = [by[v][s][test] - ref[s][test] for s in by[v] if s in ref]
        lines.append(
            f"| {v} | {len(runs)} | {statistics.mean(r[dev] for r in runs):.2f} | {ms([r[test] for r in runs])} "
            f"| {mean_of(runs, 'test_f1_at_0.5', '.2f')} | {ms(diffs) if diffs and v != reference else '-'} "
            f"| {mean_of(runs, 'energy_grad_ratio_global_local', '.3f')} | {mean_of(runs, 'energy_gold_minus_pred', '.2f')} "
            f"| {statistics.mean(r['wall_seconds'] for r in runs):.0f} |"
        )
    return "\n".join(lines)


def write_rows(rows: list[dict[str, Any]], out: Path) -> None:
    """Write all rows so far to ``out`` (Parquet), atomically."""
    keys = list(dict.fromkeys(k for r in rows for k in r))  # from_pylist alone keeps only the first row's keys
    tmp = out.with_suffix(".tmp")
    pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows]), tmp)
    tmp.replace(out)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m infnet.bench quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="synthetic_mlc")
    ap.add_argument("--root", default=None, help="data.root (directory of the data files)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), help=f"names from {list(VARIANTS)} or --define")
    ap.add_argument("--define", nargs="*", default=[], help="extra variants NAME=override,override (e.g. imp_lr3=method=implicit,method.lr_energy=1e-3)")
    ap.add_argument("--extra", nargs="*", default=[], help="Hydra overrides applied to every run")
    ap.add_argument("--variant-extra", nargs="*", default=[], help="VARIANT:override pairs, e.g. implicit:method.iters=10")
    ap.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs for every variant (same budget)")
    ap.add_argument("--pretrain-epochs", type=int, default=None, help="method.pretrain_epochs of the energy variants")
    ap.add_argument("--reference", default="ce", help="variant the paired differences are taken against")
    ap.add_argument("--data-seeds", action="store_true", help="also set data.seed to each seed (synthetic data: a new data set per seed)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench_out/quality.parquet")
    args = ap.parse_args(argv)
    variants = dict(VARIANTS)
    for item in args.define:
        name, _, overrides = item.partition("=")
        variants[name] = overrides.split(",")
    unknown = [v for v in args.variants if v not in variants]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {sorted(variants)}")

    per_variant: dict[str, list[str]] = {v: [] for v in args.variants}
    for item in args.variant_extra:
        v, _, o = item.partition(":")
        per_variant[v].append(o)
    base = [f"data={args.data}"] + ([f"data.root={args.root}"] if args.root else []) + list(args.extra)
    base += [f"trainer.max_epochs={args.epochs}"] if args.epochs else []
    pretrain = [f"method.pretrain_epochs={args.pretrain_epochs}"] if args.pretrain_epochs is not None else []
    jobs = [
        (v, s, base + variants[v] + ([] if {"method=ce", "method=crf"} & set(variants[v]) else pretrain) + per_variant[v] + [f"trainer.seed={s}"] + ([f"data.seed={s}"] if args.data_seeds else []))
        for s in args.seeds
        for v in args.variants
    ]
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.workers) as pool:
        futures = {pool.submit(run_one, o): (v, s, o) for v, s, o in jobs}
        for fut in as_completed(futures):
            v, s, o = futures[fut]
            try:
                row = {"variant": v, **fut.result()}
            except Exception as exc:  # noqa: BLE001 - one failed run must not lose the others
                failed.append({"variant": v, "seed": s, "overrides": " ".join(o), "error": repr(exc)})
                print(f"{v} seed={s}: FAILED {exc!r}", file=sys.stderr, flush=True)
                continue
            rows.append(row)
            write_rows(rows + failed, out)  # finished results are on disk as soon as they exist
            m = "acc" if "test_acc" in row else "f1"
            print(f"{v} seed={s}: dev {row[f'dev_{m}']:.2f} test {row[f'test_{m}']:.2f} ({row['wall_seconds']:.0f}s)", file=sys.stderr, flush=True)

    print(f"command: python -m infnet.bench quality {' '.join(argv)}")
    print(summarise(rows, args.variants, args.reference))
    for f in failed:
        print(f"FAILED {f['variant']} seed={f['seed']}: {f['error']}")
    print(f"rows written to {out}")
