"""Every method on sequence labelling, end to end through ``infnet.train`` with a real MLflow store:
the synthetic NER default, UD English-EWT POS (from ../shared/data, skipped without it), the
conlleval-format prediction artifact, the ``crf`` baseline's task check, and the sequence energy's
mixed second derivatives (what the implicit hypergradient differentiates) in float64."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pytest
import torch

from infnet.compose import compose
from infnet.config import ConfigError
from infnet.train import main_with_tracking

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
EWT = SHARED / "pos" / "ud_english_ewt"
SMALL = ["trainer.num_threads=1", "method.lr=5e-3"]
SYNTHETIC = ["data=synthetic_seq", "data.n_train=400", "data.n_dev=100", "data.n_test=100", "trainer.max_epochs=8"]
METHODS = ["ce", "crf", "spen", "tu_gimpel", "seal", "implicit"]


def _overrides(method: str, uri: str) -> list[str]:
    extra = [] if method == "ce" else ["method.pretrain_epochs=5"]
    if method == "implicit":
        extra.append("method.inner_steps=3")
    return [f"method={method}", f"tracking.uri={uri}", *SMALL, *extra]


@pytest.mark.parametrize("method", METHODS)
def test_each_method_tags_synthetic_entities_and_is_tracked(method: str, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = main_with_tracking(compose([*SYNTHETIC, *_overrides(method, uri)]))
    assert result["method"] == method and result["data"] == "synthetic_seq" and result["task"] == "ner"
    assert "threshold" not in result and "dev_acc" not in result
    for key in ("dev_f1", "test_f1", "train_seconds"):
        assert math.isfinite(result[key])
    assert 15.0 < result["test_f1"] <= 100.0  # span F1 of untrained (or empty) tagging is ~0 here

    client = mlflow.MlflowClient(uri)
    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["method.name"] == method
    assert [m.step for m in client.get_metric_history(run.info.run_id, "dev/f1")] == list(range(8))
    assert run.data.metrics["test/f1"] == pytest.approx(result["test_f1"] / 100)
    if method not in ("ce", "crf"):
        assert "energy/grad_ratio_global_local" in run.data.metrics
    if method == "implicit":
        for key in ("train/solver/iterations", "train/solver/fallback", "train/loss/outer", "train/outer/steps",
                    "energy/rel_change_label", "energy/rel_change_local"):
            assert key in run.data.metrics, key


def test_prediction_artifact_is_conlleval_format_in_the_source_scheme(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = main_with_tracking(compose([*SYNTHETIC, "trainer.max_epochs=2", *_overrides("ce", uri)]))
    path = mlflow.artifacts.download_artifacts(
        run_id=result["mlflow_run_id"], artifact_path="test/predictions.conll", tracking_uri=uri, dst_path=str(tmp_path)
    )
    blocks = Path(path).read_text(encoding="utf-8").strip("\n").split("\n\n")
    assert len(blocks) == 100  # one per test sentence
    rows = [line.split(" ") for block in blocks for line in block.splitlines()]
    assert all(len(row) == 3 for row in rows)
    tags = {tag for row in rows for tag in row[1:]}
    assert "O" in tags and all(t == "O" or t[:2] in ("B-", "I-") for t in tags)


@pytest.mark.skipif(not EWT.is_dir(), reason="UD English-EWT not present in ../shared/data")
@pytest.mark.parametrize("method", ["ce", "implicit"])
def test_pos_tagging_reports_token_accuracy(method: str, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = ["data=ud_ewt", f"data.root={EWT}", "data.max_train_examples=400", f"data.cache_dir={tmp_path}"]
    extra = ["trainer.max_epochs=3", "method.pretrain_epochs=2"] if method != "ce" else ["trainer.max_epochs=3"]
    result = main_with_tracking(compose([*data, *extra, f"method={method}", f"tracking.uri={uri}", *SMALL]))
    assert result["task"] == "pos" and "dev_f1" not in result
    # 17 UPOS tags, the most frequent (NOUN) ~17% of tokens: 3 epochs on 400 sentences must do better
    assert 30.0 < result["test_acc"] <= 100.0 and 30.0 < result["dev_acc"] <= 100.0
    run = mlflow.MlflowClient(uri).get_run(result["mlflow_run_id"])
    assert run.data.metrics["test/acc"] == pytest.approx(result["test_acc"] / 100)


def test_crf_on_multilabel_data_is_a_clear_error() -> None:
    from infnet.train import run_training

    with pytest.raises(ConfigError, match="crf is a sequence-labelling baseline"):
        run_training(compose(["method=crf", "data.n_train=50", "data.n_dev=20", "data.n_test=20"]), verbose=False)


@pytest.mark.parametrize("override", ["model.seq.rare_unk=-1", "model.seq.word_dropout=1.5"])
def test_bad_unknown_word_settings_are_config_errors(override: str) -> None:
    from infnet.config import validate

    with pytest.raises(ConfigError, match=override.split("=")[0]):
        validate(compose(["data=synthetic_seq", override]))


@pytest.mark.parametrize("high_order", ["conv", "lstm"])
def test_energy_mixed_second_derivatives_match_finite_differences(high_order: str) -> None:
    """∂/∂θ ∇_y E_θ(x, y): the implicit method's mixed Hessian blocks, in float64 against central
    differences (padding included)."""
    from torch.func import functional_call

    from infnet.data.seq.types import SeqFeatures
    from infnet.nets.seq_energy import SeqEnergy

    torch.manual_seed(0)
    energy = SeqEnergy(4, 3, pairwise=True, high_order=high_order, order_hidden=3, order_window=3, out_init=0.5).double()
    names, values = zip(*[(n, p.detach().clone()) for n, p in energy.named_parameters() if p.requires_grad])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    feats = SeqFeatures(torch.randn(2, 4, 4, dtype=torch.float64), mask)
    y = torch.softmax(torch.randn(2, 4, 3, dtype=torch.float64), -1) * mask[..., None]
    y.requires_grad_(True)

    def total(y: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        return functional_call(energy, dict(zip(names, params)), (feats, y)).sum()

    assert torch.autograd.gradgradcheck(total, (y, *(v.requires_grad_(True) for v in values)))


CONLL = SHARED / "ner" / "conll2003"


@pytest.mark.skipif(not (CONLL / "eng.testb").is_file(), reason="CoNLL-2003 not present in ../shared/data")
def test_conll_predictions_round_trip_to_the_source_iob1_tags(tmp_path: Path) -> None:
    """A smoke run on a 300-sentence subsample of CoNLL-2003: the logged predictions' gold column is the
    test file itself (tokens and IOB1 tags, -DOCSTART- lines dropped), and the reported span F1 is what
    the predicted column scores against it."""
    from infnet.data.seq.schemes import iob1_to_bio
    from infnet.metrics import span_f1

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = ["data=conll2003", f"data.root={CONLL}", "data.max_train_examples=300", f"data.cache_dir={tmp_path}"]
    result = main_with_tracking(compose([*data, "trainer.max_epochs=2", "method=ce", f"tracking.uri={uri}", *SMALL]))
    path = mlflow.artifacts.download_artifacts(
        run_id=result["mlflow_run_id"], artifact_path="test/predictions.conll", tracking_uri=uri, dst_path=str(tmp_path)
    )
    source = [line.split() for line in (CONLL / "eng.testb").read_text(encoding="utf-8").splitlines()]
    expected = [(row[0], row[-1]) for row in source if row and row[0] != "-DOCSTART-"]
    blocks = [[line.split(" ") for line in block.splitlines()] for block in Path(path).read_text(encoding="utf-8").strip("\n").split("\n\n")]
    assert [(tok, gold) for block in blocks for tok, gold, _ in block] == expected
    gold = [iob1_to_bio([row[1] for row in block]) for block in blocks]
    pred = [iob1_to_bio([row[2] for row in block]) for block in blocks]
    assert 100 * span_f1(gold, pred) == pytest.approx(result["test_f1"])
