"""``seal``: Structured Energy As Loss, dynamic variant (Lee et al. 2022).

The task-net ψ is trained on ``BCE + lam · E_θ(x, A_ψ(x))``; the loss-net θ keeps adapting, trained
with either SEAL's NCE ranking objective (``loss_net=nce``: gold must outrank ``n_samples`` discrete
samples from the task-net, scores corrected by the proposal's log-probability) or the
margin-rescaled hinge against the task-net's output (``loss_net=margin``).
"""

from __future__ import annotations

import numpy as np

import torch

from infnet.losses import bce_sum, margin_rescaled_hinge, nce_ranking_loss, squared_l2_cost
from infnet.methods.base import EnergyMethod, step


def bernoulli_log_prob(y: torch.Tensor, p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """log q(y) under independent Bernoullis: y (..., L), p broadcastable (..., L) -> (...)."""
    p = p.clamp(eps, 1 - eps)
    return (y * p.log() + (1 - y) * (1 - p).log()).sum(-1)


class SEAL(EnergyMethod):
    name = "seal"

    def loss_net_loss(self, h: torch.Tensor, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Loss-net objective from features h (B, H), gold y (B, L) and task-net output p (B, L)."""
        m = self.ctx.method
        if m.loss_net == "margin":
            return margin_rescaled_hinge(self.energy(h, p), self.energy(h, y), squared_l2_cost(p, y))
        samples = torch.bernoulli(p[:, None, :].expand(-1, m.n_samples, -1))  # (B, S, L)
        b, s, n = samples.shape
        e_samples = self.energy(h.repeat_interleave(s, 0), samples.reshape(b * s, n)).reshape(b, s)
        return nce_ranking_loss(self.energy(h, y), e_samples, bernoulli_log_prob(y, p), bernoulli_log_prob(samples, p[:, None]))

    def train_step(self, x: torch.Tensor, y: torch.Tensor, idx: np.ndarray | None = None) -> dict[str, float]:
        m = self.ctx.method
        h = self.feats(x, idx)
        self.infnet.train()
        with torch.no_grad():
            p = self.infnet.probs(x)
        for _ in range(m.loss_net_steps):
            loss_net = self.loss_net_loss(h, y, p)
            step(self.opt_energy, loss_net, m.grad_clip)
        logits = self.infnet(x)
        ce = bce_sum(logits, y)
        e_task = self.energy_const(h, torch.sigmoid(logits)).mean()
        step(self.opt_infnet, ce + m.lam * e_task, m.grad_clip)
        return {"loss/loss_net": loss_net.item(), "loss/ce": ce.item(), "energy/task_net": e_task.item()}
