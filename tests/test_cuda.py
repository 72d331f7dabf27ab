"""The CUDA path: every method trains and predicts on the GPU, and the GPU computes what the CPU does.

Skipped without CUDA (CI has none); run on a GPU machine with ``pytest tests/test_cuda.py``.
Training goes through ``run_training`` (the whole loop, without MLflow) so that every tensor the
loop, the methods and the tasks create is checked for device placement.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infnet.compose import compose
from infnet.data import load_data
from infnet.methods import MethodContext, build_method
from infnet.methods.implicit import Implicit
from infnet.tasks import build_task
from infnet.train import make_sampler, run_training

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

MLC = ["data=synthetic_mlc", "data.n_train=600", "data.n_dev=200", "data.n_test=300", "trainer.max_epochs=4"]
SEQ = ["data=synthetic_seq", "data.n_train=400", "data.n_dev=100", "data.n_test=100", "trainer.max_epochs=8", "method.lr=5e-3"]
#: (data overrides, pretrain epochs, metric floor): the floors of the CPU end-to-end tests.
TASKS = {"mlc": (MLC, 2, 20.0), "seq": (SEQ, 5, 15.0)}


def _overrides(task: str, method: str, *extra: str) -> list[str]:
    data, pretrain, _ = TASKS[task]
    more = [] if method == "ce" else [f"method.pretrain_epochs={pretrain}"]
    if method == "implicit":
        more.append("method.inner_steps=3")
    return [f"method={method}", *data, *more, "data.cache=false", *extra]


@pytest.mark.parametrize(
    "task,method",
    [(t, m) for t in ("mlc", "seq") for m in ("ce", "spen", "tu_gimpel", "seal", "implicit")] + [("seq", "crf")],
)
def test_each_method_trains_on_cuda(task: str, method: str) -> None:
    result = run_training(compose(_overrides(task, method, "trainer.device=cuda")), verbose=False)
    assert result["device"].startswith("cuda")
    assert math.isfinite(result["test_f1"]) and result["test_f1"] > TASKS[task][2]


@pytest.mark.parametrize("task,implicit_params", [("mlc", "all"), ("seq", "all"), ("seq", "head")])
def test_implicit_hypergradient_on_cuda_matches_cpu(task: str, implicit_params: str) -> None:
    """From one state, the hypergradient (double backward through the BiLSTM for sequences) and the
    predictions agree between CPU and CUDA in float32."""
    cfg = compose(_overrides(task, "implicit", f"method.implicit_params={implicit_params}", "method.iters=5"))
    data = load_data(cfg.data)

    def build(device: torch.device) -> Implicit:
        torch.manual_seed(0)
        sample = make_sampler(data.train, 16, 0, device)
        method = build_method(MethodContext(build_task(data, cfg.model), cfg.model, cfg.method, device, sample, data.train))
        for _ in range(10):
            method.ce_step(*sample()[:2])
        method.begin_main()
        assert isinstance(method, Implicit)
        return method

    cpu, gpu = build(torch.device("cpu")), build(torch.device("cuda"))
    gpu.load_state_dict(cpu.state_dict())
    idx, idx_out = np.arange(16), np.arange(16, 32)
    batches = {}
    for name, method in (("cpu", cpu), ("cuda", gpu)):
        dev = next(method.infnet.parameters()).device
        (x, y), (x_out, y_out) = (tuple(t.to(dev) for t in data.train.batch(i)) for i in (idx, idx_out))
        grads, info = method.hypergradient(x, y, method.feats(x), x_out, y_out)
        batches[name] = (grads, info, method.predict(x))
    (g_cpu, _, p_cpu), (g_gpu, info_gpu, p_gpu) = batches["cpu"], batches["cuda"]
    assert info_gpu.fallback is None
    assert torch.allclose(p_gpu.cpu(), p_cpu, atol=1e-4)
    flat_cpu = torch.cat([g.flatten() for g in g_cpu.values()])
    flat_gpu = torch.cat([g_gpu[k].flatten().cpu() for k in g_cpu])
    assert all(g.device.type == "cuda" for g in g_gpu.values())
    assert flat_cpu.norm() > 0
    assert (flat_gpu - flat_cpu).norm() <= 1e-3 * flat_cpu.norm()
