"""``spen``: a structured prediction energy network with gradient-based inference (Belanger & McCallum).

θ is trained with the margin-rescaled structured hinge; the cost-augmented output
``argmin_y E(x, y) − Δ(y, y*)`` and the prediction ``argmin_y E(x, y)`` are both found by entropic
mirror descent (``infnet.inference.gbi``) started from the local term's minimiser.
``freeze_energy=true`` skips the θ updates: gradient-based inference on a fixed energy (with
``model.energy.oracle``, the synthetic generator's own structure: what relaxed inference on the true
structure achieves, as a reference for the inference networks trained on that energy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from infnet.losses import margin_rescaled_hinge, squared_l2_cost
from infnet.methods.base import EnergyMethod, step


class SPEN(EnergyMethod):
    name = "spen"

    def infer(self, x: Any, h: Any, y_gold: torch.Tensor | None = None) -> torch.Tensor:
        """GBI on E(h, ·) (minus Δ to ``y_gold`` when given) for input x -> y (B, *S), started
        from the minimiser of the local term (logits z0 = −∇_y E_local, which is linear in y)."""
        m = self.hp

        def objective(y: torch.Tensor) -> torch.Tensor:
            e = self.energy(h, y)
            return e if y_gold is None else e - squared_l2_cost(y, y_gold)

        with torch.enable_grad():
            y0 = self.infer_with(self.infnet, x).requires_grad_(True)
            (z0,) = torch.autograd.grad(self.energy.local_energy(h, y0).sum(), y0)
        return self.task.gbi(objective, -z0, x, m.inference_steps, m.inference_lr, m.entropy).y

    def train_step(self, x: Any, y: torch.Tensor, idx: np.ndarray | None = None) -> dict[str, float]:
        if getattr(self.hp, "freeze_energy", False):
            return {}
        h = self.feats(x, idx)
        y_aug = self.infer(x, h, y)
        e_pred, e_gold = self.energy(h, y_aug), self.energy(h, y)
        hinge = margin_rescaled_hinge(e_pred, e_gold, squared_l2_cost(y_aug, y))
        step(self.opt_energy, hinge, self.hp.grad_clip)
        return {"loss/hinge": hinge.item(), "energy/gold": e_gold.mean().item(), "energy/cost_aug": e_pred.mean().item()}

    @torch.no_grad()
    def predict_main(self, x: Any) -> torch.Tensor:
        return self.infer(x, self.feats(x))
