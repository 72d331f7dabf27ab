"""Multi-label classification data: MULAN ARFF/XML files and the synthetic generator (``load_mlc``)."""
