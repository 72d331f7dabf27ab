"""Entity tag schemes of NER files: IOB1 (CoNLL-2003) and BIO (IOB2).

Tags are ``O`` or ``<prefix>-<type>`` with prefix ``B`` or ``I`` and a non-empty type.  In **BIO**
every entity starts with ``B-``; in **IOB1** an entity starts with ``I-`` and ``B-`` marks only an
entity that directly follows one of the same type.  Both schemes read a tag sequence into the same
entities: an ``I-X`` whose predecessor is not of type X starts an entity, and so does every ``B-X``
(this is also how seqeval and conlleval read an improper BIO ``I-X`` after ``O``).

Internally everything is BIO: :func:`iob1_to_bio` converts either scheme to proper BIO (for a BIO
input it only repairs improper ``I-`` starts), and :func:`bio_to_iob1` writes tags back as IOB1.
For proper inputs the two are inverse to each other.  Both take one sentence, or many sentences as
flat tags (n,) with ``offsets`` (N+1,) (``offsets[i]:offsets[i+1]`` is sentence i).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from infnet.data.seq.vocab import distinct_items

SCHEMES = ("iob1", "bio")
OUTSIDE = "O"


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``; ValueError for anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, dash, kind = tag.partition("-")
    if prefix not in ("B", "I") or not dash or not kind:
        raise ValueError(f"tag {tag!r} is not O, B-<type> or I-<type>")
    return prefix, kind


def iob1_to_bio(tags: Sequence[str], offsets: np.ndarray | None = None) -> list[str]:
    """IOB1 (or improper BIO) tags (n,) as proper BIO tags (n,): an ``I-X`` that starts an entity becomes ``B-X``."""
    return _restart(tags, offsets, "I", "B")


def bio_to_iob1(tags: Sequence[str], offsets: np.ndarray | None = None) -> list[str]:
    """BIO tags (n,) as IOB1 tags (n,): a ``B-X`` stays only right after an X tag, else becomes ``I-X``."""
    return _restart(tags, offsets, "B", "I")


def _restart(tags: Sequence[str], offsets: np.ndarray | None, source: str, target: str) -> list[str]:
    """``tags`` with every ``<source>-X`` whose predecessor in its sentence is not of type X written ``<target>-X``."""
    distinct, positions = distinct_items(tags)
    parts = [split_tag(tag) for tag in distinct]
    kinds = sorted({kind for _, kind in parts if kind})
    kind_id = {kind: i for i, kind in enumerate(kinds)}
    kind = np.array([kind_id.get(k, -1) for _, k in parts], dtype=np.int64)[positions]
    is_source = np.array([prefix == source for prefix, _ in parts], dtype=bool)[positions]
    previous = np.concatenate([[-1], kind[:-1]])
    starts = np.asarray([0] if offsets is None else offsets[:-1], dtype=np.int64)
    previous[starts[starts < len(kind)]] = -1
    change = is_source & (previous != kind)
    out = np.array(tags, dtype=object)
    out[change] = np.array([f"{target}-{k}" for k in kinds], dtype=object)[kind[change]]
    return out.tolist()


def ner_tag_names(types: Sequence[str]) -> list[str]:
    """The fixed BIO tag order for entity ``types``: ``O``, then ``B-t``, ``I-t`` for each sorted type."""
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in sorted(set(types)) for prefix in ("B", "I")]
