"""Implicit-function-theorem hypergradients for bilevel problems (inner G, outer F).

    grads, info = hypergrad(inner_loss, outer_loss, inner_params, outer_params, solver="cg")

computes dF/dθ = ∂F/∂θ − (∂²G/∂θ∂ψ)(∂²G/∂ψ∂ψ + ρI)⁻¹ ∂F/∂ψ on flat dicts of tensors, using
Hessian-vector products only (except ``solver="dense"``). See :mod:`infnet.implicit.hypergrad`
for the default step sizes, residual definitions and safeguards.
"""

from .hvp import DEFAULT_HVP_MODE, HVPOperator
from .hypergrad import HypergradError, HypergradInfo, hypergrad
from .solvers import (
    SolveInfo,
    cg,
    default_alpha,
    dense,
    estimate_lambda_max,
    identity,
    neumann,
)
from .unrolled import unrolled

__all__ = [
    "DEFAULT_HVP_MODE",
    "HVPOperator",
    "HypergradError",
    "HypergradInfo",
    "SolveInfo",
    "cg",
    "default_alpha",
    "dense",
    "estimate_lambda_max",
    "hypergrad",
    "identity",
    "neumann",
    "unrolled",
]
