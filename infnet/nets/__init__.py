"""Networks: feature network F(x), inference network A_ψ(x), and energies E_θ(x, y)."""

from infnet.nets.crf import LinearChainCRF
from infnet.nets.energies import MLCEnergy
from infnet.nets.features import FeatureNet
from infnet.nets.inference import InferenceNet
from infnet.nets.seq_energy import SeqEnergy
from infnet.nets.sequence import (
    CharEncoder,
    SeqFeatureNet,
    SeqInferenceNet,
    masked_softmax,
    one_hot_tags,
)

__all__ = [
    "CharEncoder",
    "FeatureNet",
    "InferenceNet",
    "LinearChainCRF",
    "MLCEnergy",
    "SeqEnergy",
    "SeqFeatureNet",
    "SeqInferenceNet",
    "masked_softmax",
    "one_hot_tags",
]
