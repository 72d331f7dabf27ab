"""Gradient-based inference (GBI) on relaxed outputs, used by the SPEN baseline."""

from infnet.inference.gbi import GBIResult, mirror_descent

__all__ = ["GBIResult", "mirror_descent"]
