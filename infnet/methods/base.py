"""The small interface every training method implements, and the pieces they share.

A method owns its networks and optimisers. The training loop (``infnet.loop.fit``) calls
``train_step`` once per mini-batch, ``end_epoch`` once per epoch, ``predict`` for evaluation, and
``begin_main`` when an energy method finishes its cross-entropy pretraining phase.

Parameter ownership is explicit: the inference network ψ, the energy θ and, for
Tu & Gimpel, the cost-augmented network Φ are separate modules with separate optimisers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from infnet.tasks import Task

BatchSampler = Callable[[], tuple[Any, torch.Tensor, np.ndarray]]


@dataclass(frozen=True)
class MethodContext:
    """What a method is built from: the task (networks, losses, metrics of the output structure),
    configs, device, a sampler of random train batches (x, y (B, *S), train indices (B,)), the
    train split (for caching frozen features), a sampler of outer batches from the held-out split
    (``data.outer_fraction``; None: outer batches come from train) and a sampler of unlabeled input
    batches (``method.energy_data=unlabeled``; None: none)."""

    task: Task
    model: DictConfig
    method: DictConfig
    device: torch.device
    sample_train_batch: BatchSampler
    train: Any | None = None
    sample_outer_batch: BatchSampler | None = None
    sample_unlabeled_batch: BatchSampler | None = None


def adam(module: nn.Module | list[nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Fused Adam over the trainable parameters of ``module`` (fused: ~2x faster steps on CPU too)."""
    params = module.parameters() if isinstance(module, nn.Module) else module
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=lr, weight_decay=weight_decay, fused=True)


def replica(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with its RNN weights re-packed into cuDNN's single buffer (a plain
    deepcopy leaves them in separate tensors, which cuDNN then re-packs at every call; no-op on CPU)."""
    clone = copy.deepcopy(module)
    for m in clone.modules():
        if isinstance(m, nn.RNNBase):
            m.flatten_parameters()
    return clone


def step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip: float | None = None) -> None:
    """Zero grads, backpropagate ``loss`` (scalar) into the optimizer's parameters only, clip their
    grad norm if asked, and step.

    Only the optimizer's parameters receive gradients: another module in the graph (the energy θ
    in an inference-network step, the inference network in an energy step) gets no stray ``.grad``
    and autograd skips the branches that lead only to it.
    """
    params = [p for g in optimizer.param_groups for p in g["params"]]
    optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=params)
    if clip:
        clip_grad_norm(params, clip)
    optimizer.step()


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for one parameter list: scale the gradients by
    ``max_norm / (total + 1e-6)`` when their total 2-norm exceeds ``max_norm``; returns the total norm
    (0-dim). Unlike torch's, it scales only when needed (one host sync instead of a multiply of every
    gradient each step): a third of the cost on a small model's CPU step."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if total > max_norm:
        torch._foreach_mul_(grads, max_norm / (total + 1e-6))
    return total


class Method:
    """Base: an inference network A_ψ trained by per-label cross-entropy (the ``ce`` behaviour)."""

    name = "ce"
    uses_energy = False

    def __init__(self, ctx: MethodContext) -> None:
        self.ctx = ctx
        self.task = ctx.task
        # the method's settings as a plain namespace: read several times per step, and an OmegaConf
        # attribute lookup costs ~60 µs (a tenth of a small model's step)
        self.hp = SimpleNamespace(**OmegaConf.to_container(ctx.method, resolve=True))
        self.infnet = self.task.build_infnet().to(ctx.device)
        self.opt_infnet = adam(self.infnet, self.hp.lr, self.hp.weight_decay)
        self.pretrain_epochs = int(getattr(self.hp, "pretrain_epochs", 0))
        self.main = self.pretrain_epochs == 0

    # --- the interface -------------------------------------------------------------------------
    def train_step(self, x: Any, y: torch.Tensor, idx: np.ndarray | None = None) -> dict[str, float]:
        """One update on a batch x, y (B, *S) (rows ``idx`` of the train split, if known);
        returns scalar diagnostics."""
        return self.ce_step(x, y)

    def begin_main(self) -> None:
        """Called once when pretraining ends (after the dev-best pretrain state was restored)."""
        self.main = True

    def end_epoch(self) -> dict[str, float]:
        """Called after every epoch's updates, before evaluation; returns scalar diagnostics."""
        return {}

    @torch.no_grad()
    def predict(self, x: Any) -> torch.Tensor:
        """Relaxed prediction x -> y (B, *S) (eval mode): the inference network during pretraining,
        the method's own predictor (``predict_main``) afterwards."""
        if self.main:
            return self.predict_main(x)
        return self.infer_with(self.infnet, x)

    def predict_main(self, x: Any) -> torch.Tensor:
        """The method's predictor after pretraining; by default the inference network."""
        return self.infer_with(self.infnet, x)

    def diagnostics(self, x: Any, y: torch.Tensor) -> dict[str, float]:
        """Per-epoch diagnostics on a dev batch x, y (B, *S)."""
        return {}

    # --- shared pieces -------------------------------------------------------------------------
    def infer_with(self, net: nn.Module, x: Any) -> torch.Tensor:
        """Relaxed outputs (B, *S) of an inference network ``net`` in eval mode."""
        net.eval()
        return self.task.relax(net(x), x)

    def ce_step(self, x: Any, y: torch.Tensor) -> dict[str, float]:
        """A cross-entropy step on ψ: the ``ce`` method and every energy method's pretraining."""
        self.infnet.train()
        loss = self.task.ce_loss(self.infnet(x), y)
        step(self.opt_infnet, loss)
        return {"loss/ce": loss.item()}

    def modules(self) -> dict[str, nn.Module]:
        """Every module whose parameters make up the method's state."""
        return {"infnet": self.infnet}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser whose state must be checkpointed."""
        return {"opt_infnet": self.opt_infnet}

    def state_dict(self) -> dict[str, Any]:
        """A deep copy of all module and optimiser states (for best-model selection and checkpoints)."""
        state = {k: m.state_dict() for k, m in self.modules().items()}
        state.update({k: o.state_dict() for k, o in self.optimizers().items()})
        state["main"] = self.main
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; parts absent from ``state`` keep their values.

        ``state`` is copied first: optimizers adopt state tensors without copying them, and the loop
        shares one snapshot between several of its fields."""
        state = copy.deepcopy(state)
        self.main = bool(state.get("main", self.main))
        self.train_h: torch.Tensor | None = None
        for k, m in self.modules().items():
            if k in state:
                m.load_state_dict(state[k])
        for k, o in self.optimizers().items():
            if k in state:
                o.load_state_dict(state[k])


class EnergyMethod(Method):
    """Base of the energy-based methods: CE pretraining, then a frozen feature net F(x) and E_θ.

    After pretraining, F(x) is a frozen copy of the pretrained hidden layers and the energy's local
    term is initialised from the pretrained head (Tu & Gimpel), so that with the label term off the
    energy's minimiser is the pretrained prediction.
    """

    uses_energy = True

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.features = replica(self.infnet.features)
        self.energy = self.task.build_energy(self.infnet.features.out_dim).to(ctx.device)
        self.energy_start = replica(self.energy).requires_grad_(False)  # θ₀: where the main phase began
        self.opt_energy = self.energy_optimizer()

    train_h: torch.Tensor | None = None  # frozen features of every train example, computed lazily

    def begin_main(self) -> None:
        super().begin_main()
        self.train_h = None
        self.features.load_state_dict(self.infnet.features.state_dict())
        self.features.eval().requires_grad_(False)
        self.energy.init_local_from(self.infnet.head)
        self.energy_start.load_state_dict(self.energy.state_dict())
        self.opt_energy = self.energy_optimizer()

    def label_parameter_names(self) -> set[str]:
        """Names of θ's parameters outside the local term (label / transition / high-order terms)."""
        local = {id(p) for p in self.energy.local.parameters()}
        return {k for k, p in self.energy.named_parameters() if id(p) not in local}

    @torch.no_grad()
    def theta_change(self) -> dict[str, float]:
        """How far θ moved in the main phase: ‖θ − θ₀‖ / ‖θ₀‖ over the local term and over the rest
        (``‖θ − θ₀‖`` itself where ‖θ₀‖ = 0); 0 while θ has not been updated (the frozen control)."""
        start = dict(self.energy_start.named_parameters())
        label = self.label_parameter_names()
        out = {}
        for part, names in (("local", lambda k: k not in label), ("label", lambda k: k in label)):
            pairs = [(p, start[k]) for k, p in self.energy.named_parameters() if names(k)]
            if not pairs:
                out[f"energy/rel_change_{part}"] = 0.0
                continue
            delta = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p - q) for p, q in pairs]))
            base = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(q) for _, q in pairs]))
            out[f"energy/rel_change_{part}"] = float(delta / base if base > 0 else delta)
        return out

    def energy_optimizer(self) -> torch.optim.Adam:
        """Adam over θ with two learning rates: ``lr_energy`` for the local (unary) term and
        ``lr_label`` (null: ``lr_energy``) for the rest — the label term (multi-label) or the
        transitions and high-order term (sequences). The local term starts at the pretrained head
        and diverges with a large step, while the label term starts at zero and, at ``lr_energy``,
        cannot grow in the few hundred outer steps a run takes."""
        label = self.label_parameter_names()
        local = [p for k, p in self.energy.named_parameters() if k not in label]
        rest = [p for k, p in self.energy.named_parameters() if k in label and p.requires_grad]
        lr_label = getattr(self.hp, "lr_label", None)
        lr_label = self.hp.lr_energy if lr_label is None else lr_label
        groups = [{"params": local}, {"params": rest, "lr": lr_label}]
        return torch.optim.Adam(
            [g for g in groups if g["params"]], lr=self.hp.lr_energy, weight_decay=self.hp.weight_decay_energy, fused=True
        )

    def feats(self, x: Any, idx: np.ndarray | None = None) -> Any:
        """What the energy reads of x: the task's ``energy_input`` of frozen features F(x), no gradient.

        For fixed-size inputs (``task.cache_train_features``) and with ``idx`` (rows of the train
        split), F(x) is read from a cache computed once per main phase: F is frozen, so this is exact
        and saves a forward pass of F per step.
        """
        if idx is None or self.ctx.train is None or not self.task.cache_train_features:
            with torch.no_grad():
                self.features.eval()
                return self.task.energy_input(self.features(x), x)
        if self.train_h is None:
            self.train_h = self.ctx.train.map_inputs(self.features, self.ctx.device)
        return self.task.energy_input(self.train_h[torch.as_tensor(idx, device=self.train_h.device)], x)

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "features": self.features, "energy": self.energy, "energy_start": self.energy_start}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "opt_energy": self.opt_energy}

    def diagnostics(self, x: Any, y: torch.Tensor) -> dict[str, float]:
        """Label-term vs local-term y-gradient norm ratio, mean E(gold) − E(prediction), and how far θ
        moved (:meth:`theta_change`)."""
        h = self.feats(x)
        y_hat = self.predict(x).requires_grad_(True)
        with torch.enable_grad():
            (g_local,) = torch.autograd.grad(self.energy.local_energy(h, y_hat).sum(), y_hat)
            global_e = self.energy.global_energy(h, y_hat).sum()
            g_global = torch.autograd.grad(global_e, y_hat)[0] if global_e.requires_grad else torch.zeros_like(y_hat)
        with torch.no_grad():
            gap = (self.energy(h, y) - self.energy(h, y_hat.detach())).mean()
        return {
            "energy/grad_ratio_global_local": float(g_global.norm() / g_local.norm().clamp_min(1e-12)),
            "energy/gold_minus_pred": gap.item(),
            **self.theta_change(),
        }
