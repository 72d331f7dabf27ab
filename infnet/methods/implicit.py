"""``implicit`` (ours): the energy E_θ is a trainable loss, learned by implicit differentiation.

Inner problem (ψ, the inference network): ``inner_steps`` (T) Adam steps on
``G(ψ, θ) = mean E_θ(x, A_ψ(x)) + lam · CE(A_ψ(x), y)`` over training batches.
Outer problem (θ): after every T inner steps, θ takes one Adam step along the hypergradient of the
task objective ``F(ψ*(θ))`` (``outer_loss``: the task's ``soft_f1`` or cross-entropy ``bce``) on a *different* random training
batch, computed by ``infnet.implicit.hypergrad`` at the current ψ with the inner batch's G.
``implicit_params=head`` (the default) restricts ψ in the implicit system to the output layer (the
hidden layers are held fixed during the response): the exact hypergradient of that block problem,
whose Hessian is positive definite (CG converges in a few iterations), at a fraction of the cost;
``all`` uses every parameter of the inference network, whose Hessian is indefinite on the MLC model
(CG then stops on negative curvature after 1–2 iterations unless the damping ρ is large).
``freeze_energy=true`` is the control: θ stays at its initialisation (no outer steps).

The hypergradient is taken with the inference network in eval mode (no dropout) so that G is a
deterministic function of ψ; the inner steps themselves use dropout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from infnet.implicit import HypergradInfo, hypergrad
from infnet.implicit.hvp import Loss
from infnet.methods.base import EnergyMethod, MethodContext, clip_grad_norm, step


class Implicit(EnergyMethod):
    name = "implicit"

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.inner_count = 0

    def train_step(self, x: Any, y: torch.Tensor, idx: np.ndarray | None = None) -> dict[str, float]:
        m = self.hp
        h = self.feats(x, idx)
        self.infnet.train()
        logits = self.infnet(x)
        e = self.energy(h, self.task.relax(logits, x)).mean()
        ce = self.task.ce_loss(logits, y)
        inner = e + m.lam * ce
        step(self.opt_infnet, inner, m.grad_clip)
        stats = {"loss/inner": inner.item(), "loss/ce": ce.item(), "energy/inference_net": e.item()}
        self.inner_count += 1
        if not m.freeze_energy and self.inner_count % m.inner_steps == 0:
            stats.update(self.outer_step(x, y, h))
        return stats

    def outer_step(self, x: Any, y: torch.Tensor, h: Any) -> dict[str, float]:
        """One θ update from the implicit hypergradient; returns loss and solver diagnostics."""
        x_out, y_out, _ = self.ctx.sample_train_batch()
        grads, info = self.hypergradient(x, y, h, x_out, y_out)
        self.opt_energy.zero_grad(set_to_none=True)
        for k, p in self.energy.named_parameters():
            p.grad = grads[k]
        norm = clip_grad_norm(list(self.energy.parameters()), self.hp.outer_grad_clip or math.inf)
        self.opt_energy.step()
        return {"loss/outer": info.outer_value, "hypergrad/norm": norm.item(), **info.as_metrics("solver/")}

    def hypergradient(
        self, x: Any, y: torch.Tensor, h: Any, x_out: Any, y_out: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], HypergradInfo]:
        """dF/dθ at the current ψ: G on the inner batch (x, y (B, *S), energy input h), F on the
        outer batch (x_out, y_out); the inference net is in eval mode (no dropout)."""
        m = self.hp
        self.infnet.eval()
        try:
            return hypergrad(
                *self.bilevel_problem(x, y, h, x_out, y_out),
                solver=m.solver, iters=m.iters, damping=m.damping, tol=m.tol, alpha=m.alpha, fallback=m.fallback,
            )
        finally:
            self.infnet.train()

    def bilevel_problem(
        self, x: Any, y: torch.Tensor, h: Any, x_out: Any, y_out: torch.Tensor
    ) -> tuple[Loss, Loss, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(G, F, ψ, θ)`` as ``hypergrad`` takes them, at the current parameters: G on the inner batch
        (x, y (B, *S), energy input h), F on the outer batch. ψ is every inference-network parameter, or
        with ``implicit_params=head`` the output layer's (then the hidden features of x and x_out are
        computed once here). Call it with the inference network in the mode G should see (eval)."""
        m, energy, task = self.hp, self.energy, self.task
        net: torch.nn.Module = self.infnet
        inputs, inputs_out = x, x_out
        if m.implicit_params == "head":  # ψ restricted to the output layer; hidden layers held fixed
            net = self.infnet.head
            with torch.no_grad():
                inputs, inputs_out = self.infnet.features(x), self.infnet.features(x_out)

        def inner_loss(psi: dict[str, torch.Tensor], theta: dict[str, torch.Tensor]) -> torch.Tensor:
            logits = functional_call(net, psi, (inputs,))
            return functional_call(energy, theta, (h, task.relax(logits, x))).mean() + m.lam * task.ce_loss(logits, y)

        def outer_loss(psi: dict[str, torch.Tensor], theta: dict[str, torch.Tensor]) -> torch.Tensor:
            return task.outer_loss(m.outer_loss, task.relax(functional_call(net, psi, (inputs_out,)), x_out), y_out)

        psi = {k: p.detach() for k, p in net.named_parameters()}
        theta = {k: p.detach() for k, p in energy.named_parameters()}
        return inner_loss, outer_loss, psi, theta
