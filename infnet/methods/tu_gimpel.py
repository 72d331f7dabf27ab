"""``tu_gimpel``: inference networks trained jointly with a SPEN (Tu & Gimpel 2018; Tu et al. 2020).

Three separate parameter sets: the energy θ, the cost-augmented inference network Φ and the
test-time inference network ψ, both initialised from the pretrained MLP. Per batch (alternating):

- Φ maximises the margin-rescaled hinge ``[Δ(F_Φ(x), y) − E(x, F_Φ(x)) + E(x, y)]_+`` (squared-L2 Δ),
  regularised towards its pretrained weights (``regu_pretrain``);
- ψ minimises ``E(x, A_ψ(x)) + ce_weight · BCE`` (the optional local CE term);
- θ minimises the compound objective: the hinge on F_Φ plus ``lam`` × the perceptron hinge
  ``[−E(x, A_ψ(x)) + E(x, y)]_+`` on the test-time network.

"Retuning": before each evaluation a copy of ψ is fine-tuned for ``retune_steps`` steps on the
energy alone (``E + entropy``) over training inputs, with θ fixed; that copy makes the predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from infnet.losses import l2_to, margin_rescaled_hinge, squared_l2_cost
from infnet.methods.base import EnergyMethod, MethodContext, adam, replica, step


class TuGimpel(EnergyMethod):
    name = "tu_gimpel"

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.cost_aug = replica(self.infnet)
        self.opt_cost_aug = adam(self.cost_aug, self.hp.lr, self.hp.weight_decay)
        self.anchor = replica(self.infnet).requires_grad_(False)
        self.retuned = replica(self.infnet)

    def begin_main(self) -> None:
        super().begin_main()
        self.cost_aug.load_state_dict(self.infnet.state_dict())
        self.anchor.load_state_dict(self.infnet.state_dict())
        self.opt_cost_aug = adam(self.cost_aug, self.hp.lr, self.hp.weight_decay)

    def train_step(self, x: Any, y: torch.Tensor, idx: np.ndarray | None = None) -> dict[str, float]:
        m, task = self.hp, self.task
        h = self.feats(x, idx)
        self.cost_aug.train()
        self.infnet.train()

        y_aug = task.relax(self.cost_aug(x), x)
        hinge_aug = margin_rescaled_hinge(self.energy(h, y_aug), self.energy(h, y), squared_l2_cost(y_aug, y))
        loss_aug = -hinge_aug + m.entropy * task.entropy(y_aug)
        loss_aug = loss_aug + m.regu_pretrain * l2_to(list(self.cost_aug.parameters()), list(self.anchor.parameters()))
        step(self.opt_cost_aug, loss_aug, m.grad_clip)

        logits = self.infnet(x)
        y_test = task.relax(logits, x)
        e_test = self.energy(h, y_test).mean()
        step(self.opt_infnet, e_test + m.ce_weight * task.ce_loss(logits, y), m.grad_clip)

        y_aug, y_test = y_aug.detach(), y_test.detach()
        e_gold = self.energy(h, y)
        hinge = margin_rescaled_hinge(self.energy(h, y_aug), e_gold, squared_l2_cost(y_aug, y))
        perceptron = margin_rescaled_hinge(self.energy(h, y_test), e_gold, torch.zeros_like(e_gold))
        step(self.opt_energy, hinge + m.lam * perceptron, m.grad_clip)
        return {
            "loss/hinge": hinge.item(),
            "loss/perceptron": perceptron.item(),
            "energy/gold": e_gold.mean().item(),
            "energy/test_net": e_test.item(),
        }

    def end_epoch(self) -> dict[str, float]:
        m = self.hp
        if m.retune_steps <= 0:
            return {}
        net = self.retuned
        net.load_state_dict(self.infnet.state_dict())
        net.train()
        opt = adam(net, m.retune_lr)
        total = 0.0
        for _ in range(m.retune_steps):
            x, _, idx = self.ctx.sample_train_batch()
            y_hat = self.task.relax(net(x), x)
            loss = self.energy(self.feats(x, idx), y_hat).mean() + m.entropy * self.task.entropy(y_hat)
            step(opt, loss)
            total += loss.item()
        return {"loss/retune": total / m.retune_steps}

    @torch.no_grad()
    def predict_main(self, x: Any) -> torch.Tensor:
        return self.infer_with(self.retuned if self.hp.retune_steps > 0 else self.infnet, x)

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "cost_aug": self.cost_aug, "anchor": self.anchor, "retuned": self.retuned}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "opt_cost_aug": self.opt_cost_aug}
