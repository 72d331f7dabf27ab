"""infnet: implicit training of inference networks / energy models for structured prediction.

Importing :mod:`infnet` is light: torch is imported, but Ray, MLflow, Optuna and Hydra are only
imported by the entry points that need them (``infnet.train``, ``infnet.tune``).
"""

__version__ = "0.1.0"
