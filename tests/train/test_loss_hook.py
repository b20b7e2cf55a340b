"""The ``wrap_loss`` hook of train_fold: the wrapper is what the training steps call."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from medseg.train.model_folder import save_model_folder
from medseg.train.trainer import train_fold


class CountingLoss(nn.Module):
    """Delegates to the wrapped loss and counts training calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.loss = inner.loss
        self.calls = 0

    def forward(self, outputs, target):
        self.calls += 1
        return self.inner(outputs, target)


def test_wrapped_loss_is_used_for_every_training_step(tmp_path: Path, source, plan) -> None:
    made: list[CountingLoss] = []

    def wrap(loss, config):
        assert config.name == plan.default_configuration
        made.append(CountingLoss(loss))
        return made[-1]

    save_model_folder(tmp_path, plan, configuration=plan.default_configuration)
    ids = list(source.case_ids)
    train_fold(
        source, plan, plan.default_configuration, tmp_path, 0, train_ids=ids[:3],
        val_ids=ids[3:], device="cpu", seed=3, final_validation=False, wrap_loss=wrap,
    )  # fmt: skip
    tc = plan.configuration().training
    assert len(made) == 1
    assert made[0].calls == tc.epochs * tc.iterations_per_epoch
