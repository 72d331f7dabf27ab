"""Benchmarks (``python -m infnet.bench <quality|hypergrad|data>``): ratios and tables from one run."""
