"""Early-learning label correction: what is relabelled, when, and that it trains."""

from __future__ import annotations

import pytest
import torch

from medseg.errors import ConfigError
from medseg.train.losses import DeepSupervisionLoss, SegmentationLoss
from medseg.weak.correction import LabelCorrection, correction_wrapper

IGNORE = 3


def _confident(classes: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Logits (B, C, ...) predicting ``classes`` (B, 1, ...) with probability ~1."""
    onehot = torch.nn.functional.one_hot(classes[:, 0].long(), channels)
    return onehot.movedim(-1, 1).float() * 20


def test_confident_disagreements_are_relabelled_ignored_voxels_kept() -> None:
    target = torch.zeros(1, 1, 4, 4, 4, dtype=torch.int16)
    target[..., :2, :, :] = 1
    target[..., 3, 3, 3] = IGNORE
    network = torch.full_like(target, 2)  # confident it is class 2 everywhere
    logits = _confident(network)
    logits[..., 0, 0, 0] = 0.0  # unsure here: probabilities 1/3 each
    wrapper = LabelCorrection(
        DeepSupervisionLoss(SegmentationLoss(ignore_label=IGNORE)), threshold=0.9
    )
    corrected = wrapper.correct(logits, target)
    assert corrected.dtype == target.dtype
    assert corrected[..., 3, 3, 3] == IGNORE
    assert corrected[..., 0, 0, 0] == target[..., 0, 0, 0]
    changed = corrected != target
    assert int(changed.sum()) == 64 - 2
    assert (corrected[changed] == 2).all()
    assert wrapper.corrected_voxels == 62


def test_no_correction_before_the_start_then_correction() -> None:
    inner = DeepSupervisionLoss(SegmentationLoss())
    target = torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
    logits = _confident(torch.ones_like(target)).requires_grad_(True)
    wrapper = LabelCorrection(inner, start_fraction=0.5, total_steps=4)
    losses = [float(wrapper([logits], target).detach()) for _ in range(4)]
    clean = float(inner([logits], target).detach())
    assert losses[:2] == pytest.approx([clean, clean])  # early phase: the labels as given
    assert losses[2] < clean / 10  # the network's confident class replaced the label
    assert wrapper.steps == 4
    with torch.no_grad():
        wrapper([logits], target)  # validation calls do not count as training steps
    assert wrapper.steps == 4


def test_settings_are_checked_and_regions_refused() -> None:
    inner = DeepSupervisionLoss(SegmentationLoss())
    with pytest.raises(ConfigError, match="threshold"):
        LabelCorrection(inner, threshold=0.2)
    with pytest.raises(ConfigError, match="softmax training only"):
        LabelCorrection(DeepSupervisionLoss(SegmentationLoss(regions=[(1, 2)])))


def test_wrapper_reads_the_run_length_from_the_configuration() -> None:
    from types import SimpleNamespace

    training = SimpleNamespace(epochs=3, iterations_per_epoch=5, time_budget_s=None)
    wrapped = correction_wrapper(start_fraction=0.4)(
        DeepSupervisionLoss(SegmentationLoss()), SimpleNamespace(training=training)
    )
    assert wrapped.total_steps == 15
    assert wrapped.time_budget_s is None
    timed = SimpleNamespace(epochs=3, iterations_per_epoch=5, time_budget_s=60.0)
    assert (
        correction_wrapper()(
            DeepSupervisionLoss(SegmentationLoss()), SimpleNamespace(training=timed)
        ).time_budget_s
        == 60.0
    )


def test_train_command_passes_the_correction_hook(monkeypatch, phantom_dataset, tmp_path) -> None:
    from types import SimpleNamespace

    from typer.testing import CliRunner

    import medseg.train
    from medseg.cli.main import app_typer

    seen = {}

    def fake_train_model(dataset, output, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(model_dir=output, configuration="3d", folds=[], cv_metrics={})

    monkeypatch.setattr(medseg.train, "train_model", fake_train_model)
    args = ["train", str(phantom_dataset), "-o", str(tmp_path / "m"), "--correct-labels", "0.6"]
    args.append("--no-postprocess")  # train_model is faked: no model folder to choose on
    result = CliRunner().invoke(app_typer, args)
    assert result.exit_code == 0, result.output
    wrapped = seen["wrap_loss"](
        DeepSupervisionLoss(SegmentationLoss()),
        SimpleNamespace(
            training=SimpleNamespace(epochs=1, iterations_per_epoch=2, time_budget_s=None)
        ),
    )
    assert isinstance(wrapped, LabelCorrection)
    assert wrapped.start_fraction == 0.6
    seen.clear()
    assert CliRunner().invoke(app_typer, [*args[:4], "--no-postprocess"]).exit_code == 0
    assert "wrap_loss" not in seen
