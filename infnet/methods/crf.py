"""``crf``: a linear-chain CRF over the inference network's per-token scores (BiLSTM-CRF, Lample et al.).

The inference network's logits are the CRF's unary scores; the CRF adds transition, start and end
scores. Trained by exact negative log-likelihood (forward algorithm), decoded by Viterbi. Sequence
labelling only: it is the exact-inference reference the energy methods are compared with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as fn
from torch import nn

from infnet.methods.base import Method, MethodContext, adam, step
from infnet.nets.crf import LinearChainCRF


class CRF(Method):
    name = "crf"

    def __init__(self, ctx: MethodContext) -> None:
        if ctx.task.name == "mlc":
            raise ValueError("method=crf needs a sequence-labelling dataset (data=synthetic_seq|conll2003|wnut17|ud_ewt)")
        super().__init__(ctx)
        self.crf = LinearChainCRF(ctx.task.data.n_labels).to(ctx.device)
        self.opt_infnet = adam(list(self.infnet.parameters()) + list(self.crf.parameters()), self.hp.lr, self.hp.weight_decay)

    def train_step(self, x: Any, y: torch.Tensor, idx: np.ndarray | None = None) -> dict[str, float]:
        """One NLL step on x (a ``SeqBatch``) and one-hot y (B, T, K)."""
        self.infnet.train()
        loss = self.crf.nll(self.infnet(x), y.argmax(-1), x.mask)
        step(self.opt_infnet, loss, self.hp.grad_clip)
        return {"loss/nll": loss.item()}

    @torch.no_grad()
    def predict_main(self, x: Any) -> torch.Tensor:
        """Viterbi tags as one-hot rows (B, T, K), zero at padding."""
        self.infnet.eval()
        tags = self.crf.viterbi(self.infnet(x), x.mask)
        return fn.one_hot(tags, self.crf.n_labels).float() * x.mask.unsqueeze(-1)

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "crf": self.crf}
