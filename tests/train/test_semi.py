"""Semi-supervised training: the mean teacher's consistency term, its EMA, and a tiny run."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from medseg.errors import ConfigError, DatasetError
from medseg.train import train_model
from medseg.train.marginal import MarginalLoss
from medseg.train.semi import MeanTeacher, rampup_weight

FAST = {"num_folds": 2, "training.iterations_per_epoch": 2, "training.val_iterations": 1}


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 3, 1))


def test_consistency_is_zero_when_student_and_teacher_agree() -> None:
    student = _net()
    teacher = MeanTeacher(student, weight=1.0, noise=0.0, total_steps=10)
    image = torch.randn(2, 1, 6, 6, 6)
    assert teacher.consistency(student(image), image) == 0
    with torch.no_grad():
        student[2].bias += torch.tensor([1.0, -1.0, 0.0])
    term = teacher.consistency(student(image), image)
    assert term > 0
    # it is the weighted mean squared difference of the two softmax outputs
    expected = torch.mean(
        (torch.softmax(student(image), 1) - torch.softmax(teacher.teacher(image), 1)) ** 2
    )
    torch.testing.assert_close(term, rampup_weight(0.0) * expected)
    term.backward()
    assert student[0].weight.grad is not None
    assert all(p.grad is None for p in teacher.teacher.parameters())


def test_teacher_is_an_ema_of_the_student() -> None:
    student = _net()
    teacher = MeanTeacher(student, ema=0.3, noise=0.0)
    before = [p.detach().clone() for p in teacher.teacher.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    teacher.update()  # first step: decay min(1 - 1/1, 0.3) = 0, the teacher becomes the student
    for mine, theirs in zip(teacher.teacher.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs.detach())
    snapshot = [p.detach().clone() for p in teacher.teacher.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(2.0)
    teacher.update()  # second step: decay min(1 - 1/2, 0.3) = 0.3
    for mine, old, theirs in zip(
        teacher.teacher.parameters(), snapshot, student.parameters(), strict=True
    ):
        torch.testing.assert_close(mine, 0.3 * old + 0.7 * theirs.detach())
    assert not torch.equal(before[0], snapshot[0])


def test_rampup_and_bad_settings() -> None:
    assert rampup_weight(0.0) == pytest.approx(math.exp(-5))
    assert rampup_weight(0.125) == pytest.approx(math.exp(-1.25))
    assert rampup_weight(0.25) == rampup_weight(0.9) == 1.0
    teacher = MeanTeacher(_net(), weight=0.5, total_steps=8)
    teacher.steps = 2
    assert teacher.current_weight() == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="teacher_ema"):
        MeanTeacher(_net(), ema=1.0)


class _Spy(nn.Module):
    def __init__(self, inner, seen: list) -> None:
        super().__init__()
        self.inner, self.loss, self.seen = inner, inner.loss, seen

    def forward(self, outputs, target, *extra):
        if torch.is_grad_enabled():
            self.seen.append((type(self.loss), extra[0].tolist()))
        return self.inner(outputs, target, *extra)


def test_train_model_with_unlabelled_images(
    tmp_path: Path, raw_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i in (2, 3):  # two images without labels
        shutil.copy(raw_dataset / "imagesTr" / f"s{i}_0000.nii.gz", folder / f"u{i}_0000.nii.gz")
    updates = []
    original = MeanTeacher.update
    monkeypatch.setattr(MeanTeacher, "update", lambda self: (updates.append(1), original(self)))
    seen: list = []
    result = train_model(
        raw_dataset,
        tmp_path / "model",
        epochs=1,
        device="cpu",
        num_workers=0,
        overrides=FAST,
        unlabelled=folder,
        wrap_loss=lambda loss, config: _Spy(loss, seen),
    )
    assert len(updates) == 2  # one EMA step per training iteration
    assert {kind for kind, _ in seen} == {MarginalLoss}
    two_labelled_two_not = [[True] * 3] * 2 + [[False] * 3] * 2
    assert all(rows == two_labelled_two_not for _, rows in seen)
    plan = json.loads((tmp_path / "model" / "plan.json").read_text())
    assert plan["configurations"]["3d"]["training"]["semi_supervised"] == "mean_teacher"
    assert (tmp_path / "model" / "cache" / "3d" / "u2_image.npy").is_file()
    assert math.isfinite(result.folds[0].train_loss)


def test_semi_supervised_needs_unlabelled_images(tmp_path: Path, raw_dataset: Path) -> None:
    with pytest.raises(ConfigError, match="no unlabelled cases"):
        train_model(
            raw_dataset,
            tmp_path / "model",
            epochs=1,
            device="cpu",
            num_workers=0,
            overrides={**FAST, "training.semi_supervised": "mean_teacher"},
        )
    with pytest.raises(DatasetError, match="no images named"):
        train_model(raw_dataset, tmp_path / "m2", unlabelled=tmp_path, overrides=FAST)


def test_cli_passes_the_unlabelled_folder(
    tmp_path: Path, raw_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from typer.testing import CliRunner

    import medseg.train
    from medseg.cli.main import app_typer

    seen = {}

    def fake_train_model(dataset, output, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(model_dir=output, configuration="3d", folds=[], cv_metrics={})

    monkeypatch.setattr(medseg.train, "train_model", fake_train_model)
    args = ["train", str(raw_dataset), "-o", str(tmp_path / "m"), "--unlabelled", str(tmp_path)]
    args.append("--no-postprocess")  # train_model is faked: no model folder to choose on
    result = CliRunner().invoke(app_typer, args)
    assert result.exit_code == 0, result.output
    assert seen["unlabelled"] == tmp_path
