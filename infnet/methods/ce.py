"""``ce``: independent per-label cross-entropy (the MLP baseline); all behaviour is in the base."""

from infnet.methods.base import Method


class CrossEntropy(Method):
    """A_ψ trained with binary cross-entropy summed over labels (dropout set by ``model.dropout``)."""

    name = "ce"
