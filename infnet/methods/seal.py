"""``seal``: Structured Energy As Loss, dynamic variant (Lee et al. 2022).

The task-net ψ is trained on ``CE + lam · E_θ(x, A_ψ(x))``; the loss-net θ keeps adapting, trained
with either SEAL's NCE ranking objective (``loss_net=nce``: gold must outrank ``n_samples`` discrete
samples from the task-net, scores corrected by the proposal's log-probability) or the
margin-rescaled hinge against the task-net's output (``loss_net=margin``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from infnet.losses import margin_rescaled_hinge, nce_ranking_loss, squared_l2_cost
from infnet.methods.base import EnergyMethod, step
from infnet.tasks.base import repeat_rows


class SEAL(EnergyMethod):
    name = "seal"

    def loss_net_loss(self, h: Any, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Loss-net objective from the energy input h, gold y (B, *S) and task-net output p (B, *S)."""
        m, task = self.hp, self.task
        if m.loss_net == "margin":
            return margin_rescaled_hinge(self.energy(h, p), self.energy(h, y), squared_l2_cost(p, y))
        samples = task.sample(p, m.n_samples)  # (B, S, *S)
        b, s = samples.shape[:2]
        e_samples = self.energy(repeat_rows(h, s), samples.flatten(0, 1)).reshape(b, s)
        return nce_ranking_loss(self.energy(h, y), e_samples, task.log_prob(y, p), task.log_prob(samples, p[:, None]))

    def train_step(self, x: Any, y: torch.Tensor, idx: np.ndarray | None = None) -> dict[str, float]:
        m = self.hp
        h = self.feats(x, idx)
        self.infnet.train()
        with torch.no_grad():
            p = self.task.relax(self.infnet(x), x)
        for _ in range(m.loss_net_steps):
            loss_net = self.loss_net_loss(h, y, p)
            step(self.opt_energy, loss_net, m.grad_clip)
        logits = self.infnet(x)
        ce = self.task.ce_loss(logits, y)
        e_task = self.energy(h, self.task.relax(logits, x)).mean()
        step(self.opt_infnet, ce + m.lam * e_task, m.grad_clip)
        return {"loss/loss_net": loss_net.item(), "loss/ce": ce.item(), "energy/task_net": e_task.item()}
