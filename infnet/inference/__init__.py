"""Gradient-based inference (GBI) on relaxed outputs, used by the SPEN baseline, and search error."""

from infnet.inference.gbi import GBIResult, entropic_mirror_descent, mirror_descent
from infnet.inference.gbi_simplex import simplex_mirror_descent
from infnet.inference.search_error import SearchError, search_error

__all__ = [
    "GBIResult",
    "SearchError",
    "entropic_mirror_descent",
    "mirror_descent",
    "search_error",
    "simplex_mirror_descent",
]
