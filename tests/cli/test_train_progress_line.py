"""The progress line ``medseg train`` prints for each log row."""

from __future__ import annotations

import math

from medseg.cli.train_commands import describe_epoch


def test_epoch_row_prints_losses_and_dice() -> None:
    row = {"fold": 0, "epoch": 3, "train_loss": 0.51234, "val_loss": 0.4, "epoch_s": 2.04}
    row |= {"dice_grey_matter": 0.9, "dice_lesion": 0.25}
    assert describe_epoch(row) == (
        "fold 0 epoch 3: loss 0.5123, val loss 0.4000, Dice grey_matter 0.900 lesion 0.250 (2.0 s)"
    )


def test_unmeasured_values_are_left_out_not_printed_as_nan() -> None:
    # a time-budgeted run: no patch validation loss; its last round validated without a step
    row = {"fold": 1, "epoch": 9, "train_loss": math.nan, "val_loss": math.nan, "epoch_s": 30.0}
    row |= {"dice_grey_matter": 0.8, "dice_lesion": math.nan}
    line = describe_epoch(row)
    assert "nan" not in line
    assert line == "fold 1 epoch 9: Dice grey_matter 0.800 (30.0 s)"
    empty = {"fold": 1, "epoch": 2, "train_loss": math.nan, "val_loss": math.nan, "epoch_s": 1.0}
    assert describe_epoch(empty) == "fold 1 epoch 2: no step (1.0 s)"
