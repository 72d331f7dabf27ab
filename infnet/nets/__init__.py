"""Networks: feature network F(x), inference network A_ψ(x), and energies E_θ(x, y)."""

from infnet.nets.energies import MLCEnergy
from infnet.nets.features import FeatureNet
from infnet.nets.inference import InferenceNet

__all__ = ["FeatureNet", "InferenceNet", "MLCEnergy"]
