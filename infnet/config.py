"""Semantic checks of a composed Hydra config (Hydra itself rejects unknown keys).

``validate`` raises ``ConfigError`` naming the offending key, its value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

METHODS = ("ce", "spen", "tu_gimpel", "seal", "implicit", "crf")
SOLVERS = ("cg", "neumann", "identity", "dense", "unrolled")
DENSE_MAX_PARAMS = 4096
"""The most ψ parameters ``method.solver=dense`` accepts: it builds the n×n matrix H + ρI from n
Hessian-vector products at every outer step (n = 4096: 64 MiB per float32 copy, 4096 HVPs)."""


class ConfigError(ValueError):
    """A config value that Hydra accepts syntactically but that makes no sense."""


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _non_negative(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "method.name": (lambda v: v in METHODS, f"one of {METHODS}"),
    "method.lr": (_positive, "a positive number"),
    "method.pretrain_epochs": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "method.lr_energy": (_non_negative, "a number >= 0"),
    "method.lr_label": (lambda v: v is None or _non_negative(v), "null or a number >= 0"),
    "method.inner_steps": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "method.solver": (lambda v: v in SOLVERS, f"one of {SOLVERS}"),
    "method.iters": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "method.damping": (_non_negative, "a number >= 0"),
    "method.fallback": (lambda v: v in ("identity", "zero", "raise"), "identity | zero | raise"),
    "method.implicit_params": (lambda v: v in ("all", "head"), "all | head"),
    "method.outer_loss": (lambda v: v in ("soft_f1", "bce"), "soft_f1 | bce"),
    "method.outer_data": (lambda v: v in ("train", "heldout"), "train | heldout"),
    "method.outer_steps": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "method.energy_noise": (_non_negative, "a number >= 0"),
    "method.energy_data": (lambda v: v in ("train", "unlabeled", "auto"), "train | unlabeled | auto"),
    "data.outer_fraction": (lambda v: _non_negative(v) and v < 1, "a fraction in [0, 1)"),
    "model.energy.pairwise": (lambda v: isinstance(v, bool), "true | false"),
    "model.energy.oracle": (_non_negative, "a number >= 0"),
    "method.loss_net": (lambda v: v in ("nce", "margin"), "nce | margin"),
    "method.inference_steps": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.dropout": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)"),
    "model.energy.label_hidden": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.energy.depth": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.seq_energy.high_order": (lambda v: v in ("none", "conv", "lstm"), "none | conv | lstm"),
    "model.seq_energy.order_hidden": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.seq_energy.order_window": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.seq_energy.global_scale": (_non_negative, "a number >= 0"),
    "model.seq.lstm_hidden": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.seq.lstm_layers": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.seq.dropout": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)"),
    "model.seq.word_dropout": (lambda v: _non_negative(v) and v <= 1, "a number in [0, 1]"),
    "model.seq.rare_unk": (_non_negative, "a number >= 0"),
    "trainer.max_epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "trainer.batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "trainer.device": (lambda v: v in ("auto", "cpu", "cuda") or str(v).startswith("cuda:"), "auto | cpu | cuda[:i]"),
    "data.task": (lambda v: v in ("mlc", "ner", "pos"), "mlc | ner | pos"),
    "data.dev_fraction": (lambda v: isinstance(v, float) and 0 < v < 1, "a fraction in (0, 1)"),
}


def _lookup(cfg: DictConfig, dotted: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate(cfg: DictConfig) -> None:
    """Check every known key present in ``cfg``; raise ``ConfigError`` on the first bad value."""
    for key, (ok, allowed) in CHECKS.items():
        present, value = _lookup(cfg, key)
        if present and not ok(value):
            raise ConfigError(f"invalid config value {key}={value!r}: expected {allowed}")
    if cfg.method.name == "crf" and cfg.data.get("task", "mlc") not in ("ner", "pos"):
        raise ConfigError(f"method=crf is a sequence-labelling baseline; data={cfg.data.name} is not sequence data "
                          "(use data=synthetic_seq|conll2003|wnut17|ud_ewt)")
    if cfg.method.get("outer_data", "train") == "heldout" and not cfg.data.get("outer_fraction"):
        raise ConfigError("method.outer_data=heldout needs a held-out split: set data.outer_fraction (e.g. 0.15)")
    if cfg.method.get("energy_noise") and cfg.data.get("task", "mlc") != "mlc":
        raise ConfigError(f"method.energy_noise perturbs dense multi-label inputs; data={cfg.data.name} is sequence data")
    if cfg.method.get("pretrain_epochs", 0) >= cfg.trainer.max_epochs:
        raise ConfigError(
            f"trainer.max_epochs={cfg.trainer.max_epochs} leaves no main-phase epoch after "
            f"method.pretrain_epochs={cfg.method.pretrain_epochs}"
        )


def check_dense_solver(solver: str, implicit_params: str, n_psi: int) -> None:
    """Raise ``ConfigError`` if ``method.solver=dense`` would materialise the Hessian of ``n_psi`` >
    ``DENSE_MAX_PARAMS`` parameters of ψ (checked when the method is built, before any training)."""
    if solver != "dense" or n_psi <= DENSE_MAX_PARAMS:
        return
    smaller = "method.implicit_params=head (only the output layer in ψ), " if implicit_params != "head" else ""
    raise ConfigError(
        f"method.solver=dense materialises the {n_psi}×{n_psi} Hessian: method.implicit_params={implicit_params} puts "
        f"{n_psi} parameters in ψ, more than the {DENSE_MAX_PARAMS} the dense solver accepts. Use method.solver=cg "
        f"(or neumann: Hessian-vector products only), or {smaller}or a smaller model"
    )
