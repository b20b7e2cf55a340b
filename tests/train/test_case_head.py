"""Case-level classification head: shapes, gradients, learning, fold outputs, unchanged default."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.data.case_table import read_case_table
from medseg.errors import ConfigError
from medseg.plan import apply_overrides
from medseg.plan.plan import ClassificationConfig
from medseg.train.case_head import (
    HEAD_INFO,
    HEAD_WEIGHTS,
    BottleneckTap,
    CaseClassifier,
    load_case_head,
)
from medseg.train.loader import BatchStream
from medseg.train.model_folder import ModelFolder, save_model_folder
from medseg.train.networks import build_network
from medseg.train.sampling import PatchSampler
from medseg.train.trainer import train_fold

CASES = "case,age,sex,risk\ncase0,30,F,low\ncase1,70,M,high\ncase2,35,M,low\ncase3,75,F,high\n"


@pytest.fixture
def table(tmp_path: Path):
    path = tmp_path / "cases.csv"
    path.write_text(CASES)
    return read_case_table(path)


def _net(plan):
    config = plan.configuration("3d")
    torch.manual_seed(0)
    return build_network(config.network, 1, plan.num_classes, 3, patch_size=config.patch_size)


def _classifier(net, table, metadata=("age", "sex")):
    settings = ClassificationConfig(target="risk", metadata=tuple(metadata), weight=1.0)
    ids = ["case0", "case1", "case2", "case3"]
    return CaseClassifier(net, settings, table, ids, ids)


def test_head_shape_and_gradients(plan, table) -> None:
    net = _net(plan)
    classifier = _classifier(net, table)
    assert classifier.info.classes == ("high", "low")
    assert classifier.info.features == 16  # the tiny plan's deepest filters
    assert classifier.info.metadata.width == 2 + 3  # age (+missing), sex F/M (+missing)
    x = torch.randn(4, 1, 8, 8, 8)
    net(x)
    features = classifier.tap.features
    assert features is not None
    assert features.shape == (4, 16, 2, 2, 2)
    logits = classifier.head(features.float().mean((2, 3, 4)), classifier.metadata)
    assert logits.shape == (4, 2)
    net(x)
    loss = classifier.loss(torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in classifier.head.parameters())
    encoder = [p for p in net.input_block.parameters() if p.grad is not None]
    assert encoder
    assert any(p.grad.abs().sum() > 0 for p in encoder)
    # the decoder plays no part in the classification loss
    assert all(p.grad is None for p in net.output_block.parameters())


def test_unknown_case_rows_are_left_out(plan, table) -> None:
    net = _net(plan)
    classifier = _classifier(net, table)
    net(torch.randn(2, 1, 8, 8, 8))
    assert classifier.loss(torch.tensor([-1, -1])).item() == 0.0
    net(torch.randn(2, 1, 8, 8, 8))
    half = classifier.loss(torch.tensor([-1, 1]))
    assert half.item() > 0


def test_head_learns_a_label_from_metadata(plan, table) -> None:
    """risk is 'high' exactly when age > 50: a few steps of the joint loss learn it."""
    net = _net(plan)
    classifier = _classifier(net, table, metadata=("age",))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    index = torch.tensor([0, 1, 2, 3])
    x = torch.randn(4, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        net(x)
        loss = classifier.loss(index)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 < losses[0]


def test_tap_needs_a_bottleneck(plan) -> None:
    unet_plan = apply_overrides(plan, {"3d.network.architecture": "unet"})
    net = _net(unet_plan)
    with pytest.raises(ConfigError, match="bottleneck"):
        BottleneckTap(net)
    with pytest.raises(ConfigError, match="bottleneck stage"):
        apply_overrides(unet_plan, {"training.classification.target": "risk"})
    with pytest.raises(ConfigError, match="dropout must be in"):
        apply_overrides(
            plan,
            {"training.classification.target": "risk", "training.classification.dropout": 1.0},
        )
    with pytest.raises(ConfigError, match="cannot also be metadata"):
        apply_overrides(
            plan,
            {
                "training.classification.target": "risk",
                "training.classification.metadata": ["risk"],
            },
        )


def test_stream_case_index_leaves_batches_unchanged(source, plan) -> None:
    config = plan.configuration("3d")
    sampler = PatchSampler(
        source, ["case0", "case1"], config.patch_size, 2, 0.5, foreground_labels=[1, 2]
    )
    plain = BatchStream(sampler, None, seed=5).batch(3)
    tagged = BatchStream(sampler, None, seed=5, case_index={"case1": 0}).batch(3)
    assert len(tagged) == len(plain) + 1
    for a, b in zip(plain, tagged, strict=False):
        assert torch.equal(a, b)
    batch = sampler.sample(np.random.default_rng([5, 3]))
    expected = [0 if c == "case1" else -1 for c in batch.cases]
    assert tagged[-1].tolist() == expected


def _classifying(plan, **settings):
    training = dataclasses.replace(
        plan.configuration("3d").training,
        classification=ClassificationConfig(target="risk", **settings),
    )
    config = dataclasses.replace(plan.configuration("3d"), training=training)
    return plan.with_configuration(config)


def test_train_fold_writes_the_head(tmp_path: Path, source, plan, table) -> None:
    plan = _classifying(plan, metadata=("age", "sex:cat"))
    out = tmp_path / "model"
    save_model_folder(out, plan, configuration="3d")
    result = train_fold(
        source, plan, "3d", out, 0,
        train_ids=["case0", "case1", "case2"], val_ids=["case3"],
        device="cpu", seed=3, case_table=table,
        labelled_ids=["case0", "case1", "case2", "case3"],
    )  # fmt: skip
    fold = result.path
    assert (fold / HEAD_WEIGHTS).is_file()
    assert (fold / HEAD_INFO).is_file()
    # the segmentation weights stay those of the plain network (strict load)
    ModelFolder.load(out).build_network(0)
    _head, info = load_case_head(fold)
    assert info.classes == ("high", "low")
    assert info.target == "risk"
    assert [f.name for f in info.metadata.fields] == ["age", "sex"]
    metrics = json.loads((fold / "val_metrics.json").read_text())["classification"]
    assert metrics["n_cases"] == 1
    assert metrics["target"] == "risk"
    probs = metrics["per_case"]["case3"]["probabilities"]
    assert set(probs) == {"high", "low"}
    assert sum(probs.values()) == pytest.approx(1.0)
    assert metrics["per_case"]["case3"]["target"] == "high"


def test_train_fold_needs_a_table(tmp_path: Path, source, plan) -> None:
    plan = _classifying(plan)
    out = tmp_path / "model"
    save_model_folder(out, plan, configuration="3d")
    with pytest.raises(ConfigError, match="no case table"):
        train_fold(
            source, plan, "3d", out, 0, train_ids=["case0", "case1"], val_ids=["case3"],
            device="cpu",
        )  # fmt: skip


def test_without_classification_nothing_changes(tmp_path: Path, source, plan, table) -> None:
    """A case table given to a plan without classification is ignored: same weights, same loss."""
    results = []
    for name, extra in (("a", {}), ("b", {"case_table": table})):
        out = tmp_path / name
        save_model_folder(out, plan, configuration="3d")
        results.append(
            train_fold(
                source,
                plan,
                "3d",
                out,
                0,
                train_ids=["case0", "case1", "case2"],
                val_ids=["case3"],
                device="cpu",
                seed=3,
                **extra,
            )
        )
    assert results[0].train_loss == results[1].train_loss
    assert not (results[1].path / HEAD_INFO).exists()


class Killed(Exception):
    """Stands in for a kill in the middle of epoch 2."""


@pytest.mark.slow
def test_resume_restores_the_head(tmp_path: Path, source, plan, table) -> None:
    from safetensors.torch import load_file

    plan = _classifying(plan, metadata=("age",))
    ids = {"train_ids": ["case0", "case1", "case2"], "val_ids": ["case3"]}

    def run(out: Path, **kwargs):
        save_model_folder(out, plan, configuration="3d")
        return train_fold(
            source, plan, "3d", out, 0, device="cpu", seed=3, case_table=table, **ids, **kwargs
        )

    def kill(done: int, total: int) -> None:
        if done == 3:
            raise Killed

    run(tmp_path / "a")
    with pytest.raises(Killed):
        run(tmp_path / "b", on_progress=kill)
    run(tmp_path / "b")
    for name in (HEAD_WEIGHTS, "model.safetensors"):
        a = load_file(str(tmp_path / "a" / "fold_0" / name))
        b = load_file(str(tmp_path / "b" / "fold_0" / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_2d_configuration_classifies(tmp_path: Path, source, tiny_plan, table) -> None:
    plan = tiny_plan(ndim=2)
    config = plan.configuration("2d")
    training = dataclasses.replace(
        config.training, classification=ClassificationConfig(target="risk", metadata=("age",))
    )
    plan = plan.with_configuration(dataclasses.replace(config, training=training))
    out = tmp_path / "model"
    save_model_folder(out, plan, configuration="2d")
    result = train_fold(
        source, plan, "2d", out, 0, train_ids=["case0", "case1", "case2"], val_ids=["case3"],
        device="cpu", seed=3, case_table=table, labelled_ids=["case0", "case1", "case2", "case3"],
    )  # fmt: skip
    _head, info = load_case_head(result.path)
    assert info.features == 16
    metrics = json.loads((result.path / "val_metrics.json").read_text())["classification"]
    assert sum(metrics["per_case"]["case3"]["probabilities"].values()) == pytest.approx(1.0)


def test_case_probability_is_the_mean_of_window_probabilities() -> None:
    from medseg.data.case_table import EncodedField, MetadataEncoding
    from medseg.train.case_head import CaseHead, CaseHeadInfo, case_probabilities

    meta = MetadataEncoding(fields=(EncodedField(name="age", kind="numeric", mean=50, std=10),))
    info = CaseHeadInfo(target="risk", classes=("a", "b", "c"), metadata=meta, features=4, hidden=5)
    torch.manual_seed(0)
    head = CaseHead(info).eval()
    windows = [torch.randn(2, 4), torch.randn(3, 4)]
    got = case_probabilities(head, info, windows, {"age": "70"})
    features = torch.cat(windows)
    metadata = torch.tensor([[2.0, 0.0]]).expand(5, -1)  # (70 - 50) / 10, not missing
    with torch.no_grad():
        expected = torch.softmax(head(features, metadata), 1).mean(0)
        of_mean = torch.softmax(head(features.mean(0, keepdim=True), metadata[:1]), 1)[0]
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-6)
    assert not np.allclose(got, of_mean.numpy())  # not the probability of the mean feature
