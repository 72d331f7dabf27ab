"""GPUs in a sweep: how many the driver requests per trial, and what a trial does with the ones it gets.

* ``gpu_request``: ``tune.gpus_per_trial`` stands whenever the cluster could ever give a GPU -- it has
  one now, or the sweep joined a running cluster (``tune.address``), whose autoscaler adds GPU workers
  for pending GPU trials (``ray up`` clusters start with ``min_workers: 0``, i.e. without a GPU). Only a
  local Ray runtime started by the driver on a machine without GPUs drops the request (with a warning),
  since nothing could ever run the trials there. Fractions pack trials: 0.25 = 4 trials per GPU.
* ``trial_device``: a trial that Ray gave GPUs must be able to use them: if torch cannot use CUDA (a
  driver too old for torch's CUDA build, a CPU-only torch, no device file), the trial fails with
  :class:`CudaUnavailable` naming the versions, instead of silently training on the CPU.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

log = logging.getLogger("infnet.tune")

DRIVER_FILE = Path("/proc/driver/nvidia/version")


class CudaUnavailable(RuntimeError):
    """A trial holds GPUs but torch cannot use CUDA."""


def gpu_request(gpus_per_trial: float, cluster_gpus: float, joined_cluster: bool) -> float:
    """GPUs each trial requests from Ray (see the module docstring)."""
    if gpus_per_trial <= 0 or cluster_gpus > 0 or joined_cluster:
        return max(0.0, gpus_per_trial)
    log.warning("tune.gpus_per_trial=%s but this local Ray runtime has no GPU: requesting 0 GPUs "
                "(to use a cluster's GPU workers, join it with tune.address=auto on its head node)", gpus_per_trial)
    return 0.0


def nvidia_driver_version() -> str | None:
    """The loaded NVIDIA kernel driver's version (from ``/proc/driver/nvidia/version``), or None."""
    try:
        match = re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", DRIVER_FILE.read_text())
    except OSError:
        return None
    return match.group(1) if match else None


def cuda_unavailable_message(gpu_ids: list[str]) -> str:
    """Why a trial holding ``gpu_ids`` cannot train on them, with the versions that decide it."""
    driver = nvidia_driver_version()
    build = torch.version.cuda
    return (f"this trial was given GPU(s) {gpu_ids} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}) "
            f"but torch {torch.__version__} cannot use CUDA: "
            + (f"torch is built for CUDA {build}" if build else "torch is a CPU-only build")
            + f", NVIDIA driver {driver or 'not found (no /proc/driver/nvidia/version)'}. "
            "Install an NVIDIA driver that supports torch's CUDA version (CUDA 13 needs driver >= 580) or a torch "
            "build for the node's driver; or set tune.gpus_per_trial=0 to train on CPUs")


def trial_device(gpu_ids: list[str]) -> tuple[str, dict[str, str]]:
    """The device a trial trains on and the MLflow tags that record it.

    Args:
        gpu_ids: the GPU ids Ray assigned to the trial (``ray.get_gpu_ids()``); empty: CPU training.

    Returns:
        (``"cuda"`` or ``"cpu"``, tags ``infnet.device`` and, on a GPU, ``infnet.gpu_name``).

    Raises:
        CudaUnavailable: ``gpu_ids`` is not empty but ``torch.cuda.is_available()`` is False.
    """
    if not gpu_ids:
        return "cpu", {"infnet.device": "cpu"}
    if not torch.cuda.is_available():
        raise CudaUnavailable(cuda_unavailable_message([str(g) for g in gpu_ids]))
    return "cuda", {"infnet.device": "cuda", "infnet.gpu_name": torch.cuda.get_device_name(0)}


__all__ = ["CudaUnavailable", "cuda_unavailable_message", "gpu_request", "nvidia_driver_version", "trial_device"]
