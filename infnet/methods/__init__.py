"""Training methods behind one small interface (``infnet.methods.base.Method``)."""

from __future__ import annotations

from infnet.methods.base import Method, MethodContext
from infnet.methods.ce import CrossEntropy
from infnet.methods.crf import CRF
from infnet.methods.implicit import Implicit
from infnet.methods.seal import SEAL
from infnet.methods.spen import SPEN
from infnet.methods.tu_gimpel import TuGimpel

#: method.name -> its class
REGISTRY: dict[str, type[Method]] = {c.name: c for c in (CrossEntropy, SPEN, TuGimpel, SEAL, Implicit, CRF)}


def build_method(ctx: MethodContext) -> Method:
    """Instantiate the method named by ``ctx.method.name`` (ce | spen | tu_gimpel | seal | implicit | crf)."""
    name = ctx.method.name
    if name not in REGISTRY:
        raise ValueError(f"unknown method.name={name!r}; choose one of {sorted(REGISTRY)}")
    return REGISTRY[name](ctx)


__all__ = ["Method", "MethodContext", "build_method"]
