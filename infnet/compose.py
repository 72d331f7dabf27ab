"""Compose the packaged Hydra config from Python (tests, benchmarks, Ray Tune trials)."""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """The config ``python -m infnet.train <overrides>`` would run with (Hydra's own errors on bad keys)."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="infnet.conf", version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))
