"""Sequence-labelling data: CoNLL / CoNLL-U files (NER, POS), vocabularies, embeddings and the synthetic
generator (``load_seq``)."""
