"""``implicit`` (ours): the energy E_θ is a trainable loss, learned by implicit differentiation.

Inner problem (ψ, the inference network): ``inner_steps`` (T) Adam steps on
``G(ψ, θ) = mean E_θ(x̃, A_ψ(x̃)) + lam · CE(A_ψ(x), y)`` over training batches, where x̃ = x, or a batch of
unlabeled inputs (``energy_data=unlabeled``, or ``auto`` (the default) on data that has them), and with ``energy_noise = σ > 0``
(multi-label data) those inputs perturbed by N(0, σ²) noise: the energy is then minimised where A_ψ and
the local term are uncertain as on unseen inputs, instead of only on points the CE term already fits
(where a structure term has nothing to fix).
Outer problem (θ): after every T inner steps, θ takes ``outer_steps`` Adam steps along the hypergradient
of the task objective ``F(ψ*(θ))`` (``outer_loss``: the task's ``soft_f1`` or cross-entropy ``bce``) on a
batch of *outer data*: a different random training batch (``outer_data=train``) or a batch of the
held-out split that ψ never trains on (``outer_data=heldout``, with ``data.outer_fraction``), computed by
``infnet.implicit.hypergrad`` at the current ψ with the inner batch's G.
``implicit_params=head`` (the default) restricts ψ in the implicit system to the output layer (the
hidden layers are held fixed during the response): the exact hypergradient of that block problem,
whose Hessian is positive definite (CG converges in a few iterations), at a fraction of the cost;
``all`` uses every parameter of the inference network.
``freeze_energy=true`` is the control: θ stays at its initialisation (no outer steps).

Descent check, per epoch: the outer loss F on each outer batch when its θ step is taken, and again on
the same batch after the next T inner steps (ψ has responded to the new θ): ``outer/loss_before``,
``outer/loss_after`` and the fraction of outer steps after which F went down.

The outer loop's position (the inner-step counter and the pending descent check) is part of the
method's state dict, so a run resumed from a checkpoint takes its outer steps where the original did.

The hypergradient is taken with the inference network in eval mode (no dropout) so that G is a
deterministic function of ψ; the inner steps themselves use dropout.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from infnet.config import check_dense_solver
from infnet.implicit import HypergradInfo, hypergrad
from infnet.implicit.hvp import Loss
from infnet.methods.base import EnergyMethod, MethodContext, clip_grad_norm, step


class Implicit(EnergyMethod):
    name = "implicit"

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        n_psi = sum(p.numel() for p in self.implicit_module().parameters())
        check_dense_solver(self.hp.solver, self.hp.implicit_params, n_psi)
        self.inner_count = 0
        self.sample_outer = ctx.sample_outer_batch or ctx.sample_train_batch
        self.pending: tuple[Any, torch.Tensor, float] | None = None  # last outer batch and its F before the θ step
        self.trace = {"steps": 0, "pairs": 0, "before": 0.0, "after": 0.0, "descents": 0}

    def energy_batch(self, x: Any, h: Any) -> tuple[Any, Any]:
        """Inputs x̃ and energy input h̃ at which the inner loss evaluates the energy: the batch's own
        (x, h), or a batch of unlabeled inputs (``energy_data=unlabeled``); with ``energy_noise`` σ > 0
        perturbed by σ·N(0, I) (dense (B, D) inputs); h̃ are the frozen features of x̃."""
        sigma = float(getattr(self.hp, "energy_noise", 0.0) or 0.0)
        x_e = x if self.ctx.sample_unlabeled_batch is None else self.ctx.sample_unlabeled_batch()[0]
        if sigma:
            x_e = x_e + sigma * torch.randn_like(x_e)
        return (x, h) if x_e is x else (x_e, self.feats(x_e))

    def train_step(self, x: Any, y: torch.Tensor, idx: np.ndarray | None = None) -> dict[str, float]:
        m = self.hp
        h = self.feats(x, idx)
        x_e, h_e = self.energy_batch(x, h)
        self.infnet.train()
        logits = self.infnet(x)
        logits_e = logits if x_e is x else self.infnet(x_e)
        e = self.energy(h_e, self.task.relax(logits_e, x_e)).mean()
        ce = self.task.ce_loss(logits, y)
        inner = e + m.lam * ce
        step(self.opt_infnet, inner, m.grad_clip)
        stats = {"loss/inner": inner.item(), "loss/ce": ce.item(), "energy/inference_net": e.item()}
        self.inner_count += 1
        if not m.freeze_energy and self.inner_count % m.inner_steps == 0:
            stats.update(self.outer_step(x, y, h, x_e, h_e))
        return stats

    def outer_step(self, x: Any, y: torch.Tensor, h: Any, x_e: Any, h_e: Any) -> dict[str, float]:
        """``outer_steps`` θ updates from the implicit hypergradient at the current ψ on one outer
        batch; returns loss and solver diagnostics of the first."""
        self.check_descent()
        x_out, y_out, _ = self.sample_outer()
        stats: dict[str, float] = {}
        for k in range(int(getattr(self.hp, "outer_steps", 1))):
            grads, info = self.hypergradient(x, y, h, x_out, y_out, x_e, h_e)
            self.opt_energy.zero_grad(set_to_none=True)
            for name, p in self.energy.named_parameters():
                p.grad = grads[name]
            norm = clip_grad_norm(list(self.energy.parameters()), self.hp.outer_grad_clip or math.inf)
            self.opt_energy.step()
            if k == 0:
                stats = {"loss/outer": info.outer_value, "hypergrad/norm": norm.item(), **info.as_metrics("solver/")}
        self.pending = (x_out, y_out, stats["loss/outer"])
        self.trace["steps"] += 1
        return stats

    @torch.no_grad()
    def outer_value(self, x_out: Any, y_out: torch.Tensor) -> float:
        """F of the current inference network (eval mode) on an outer batch x_out, y_out (B, *S)."""
        p = self.infer_with(self.infnet, x_out)
        self.infnet.train()
        return float(self.task.outer_loss(self.hp.outer_loss, p, y_out))

    def check_descent(self) -> None:
        """Measure F again on the previous outer batch, now that ψ has taken T steps under the new θ."""
        if self.pending is None:
            return
        x_out, y_out, before = self.pending
        after = self.outer_value(x_out, y_out)
        t = self.trace
        t["pairs"] += 1
        t["before"] += before
        t["after"] += after
        t["descents"] += int(after < before)
        self.pending = None

    def state_dict(self) -> dict[str, Any]:
        """The base state plus ``outer_loop``: the inner-step counter (when the next outer step falls)
        and the pending descent check (the last outer batch x_out, y_out (B, *S) and its F before the θ
        step), which carry over epoch boundaries."""
        state = super().state_dict()
        state["outer_loop"] = {"inner_count": self.inner_count, "pending": copy.deepcopy(self.pending)}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (the outer loop's position only if ``state`` has it)."""
        super().load_state_dict(state)
        if "outer_loop" not in state:
            return
        self.inner_count = int(state["outer_loop"]["inner_count"])
        pending = state["outer_loop"]["pending"]
        if pending is not None:  # a checkpoint's tensors are on the CPU; never mutated, so not copied
            x_out, y_out, before = pending
            pending = (x_out.to(self.ctx.device), y_out.to(self.ctx.device), float(before))
        self.pending = pending

    def end_epoch(self) -> dict[str, float]:
        """Outer steps taken this epoch and the descent check (see the module docstring)."""
        t = self.trace
        out = {"outer/steps": float(t["steps"])}
        if t["pairs"]:
            out.update({
                "outer/loss_before": t["before"] / t["pairs"],
                "outer/loss_after": t["after"] / t["pairs"],
                "outer/descent_fraction": t["descents"] / t["pairs"],
            })
        self.trace = dict.fromkeys(t, 0)
        return out

    def hypergradient(
        self, x: Any, y: torch.Tensor, h: Any, x_out: Any, y_out: torch.Tensor, x_e: Any = None, h_e: Any = None
    ) -> tuple[dict[str, torch.Tensor], HypergradInfo]:
        """dF/dθ at the current ψ: G on the inner batch (x, y (B, *S), energy input h; energy at x_e, h_e
        if given), F on the outer batch (x_out, y_out); the inference net is in eval mode (no dropout)."""
        m = self.hp
        self.infnet.eval()
        try:
            return hypergrad(
                *self.bilevel_problem(x, y, h, x_out, y_out, x_e, h_e),
                solver=m.solver, iters=m.iters, damping=m.damping, tol=m.tol, alpha=m.alpha, fallback=m.fallback,
            )
        finally:
            self.infnet.train()

    def implicit_module(self) -> torch.nn.Module:
        """The module whose parameters are ψ in the implicit system: the head (``implicit_params=head``)
        or the whole inference network."""
        return self.infnet.head if self.hp.implicit_params == "head" else self.infnet

    def bilevel_problem(
        self, x: Any, y: torch.Tensor, h: Any, x_out: Any, y_out: torch.Tensor, x_e: Any = None, h_e: Any = None
    ) -> tuple[Loss, Loss, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(G, F, ψ, θ)`` as ``hypergrad`` takes them, at the current parameters: G on the inner batch
        (CE on x, y (B, *S); energy on x_e with energy input h_e, default x and h), F on the outer batch.
        ψ is every inference-network parameter, or with ``implicit_params=head`` the output layer's (then
        the hidden features of x, x_e and x_out are computed once here). Call it with the inference
        network in the mode G should see (eval)."""
        m, energy, task = self.hp, self.energy, self.task
        x_e, h_e = (x, h) if x_e is None else (x_e, h_e)
        net = self.implicit_module()
        inputs, inputs_e, inputs_out = x, x_e, x_out
        if m.implicit_params == "head":  # ψ restricted to the output layer; hidden layers held fixed
            with torch.no_grad():
                inputs, inputs_out = self.infnet.features(x), self.infnet.features(x_out)
                inputs_e = inputs if x_e is x else self.infnet.features(x_e)

        def inner_loss(psi: dict[str, torch.Tensor], theta: dict[str, torch.Tensor]) -> torch.Tensor:
            logits = functional_call(net, psi, (inputs,))
            logits_e = logits if inputs_e is inputs else functional_call(net, psi, (inputs_e,))
            e = functional_call(energy, theta, (h_e, task.relax(logits_e, x_e))).mean()
            return e + m.lam * task.ce_loss(logits, y)

        def outer_loss(psi: dict[str, torch.Tensor], theta: dict[str, torch.Tensor]) -> torch.Tensor:
            return task.outer_loss(m.outer_loss, task.relax(functional_call(net, psi, (inputs_out,)), x_out), y_out)

        psi = {k: p.detach() for k, p in net.named_parameters()}
        theta = {k: p.detach() for k, p in energy.named_parameters()}
        return inner_loss, outer_loss, psi, theta
