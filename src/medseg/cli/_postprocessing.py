"""Console lines for a post-processing choice (medseg train, medseg determine-postprocessing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medseg.infer.cv_postprocessing import PostprocessingChoice


def describe_choice(choice: PostprocessingChoice) -> list[str]:
    """One line per tested step (score before -> after, kept or rejected), then the file."""
    lines = []
    for step in choice.steps:
        target = "foreground" if step.label is None else f"label {step.label}"
        if step.size is not None:
            target += f", < {step.size} voxels"
        verdict = "kept" if step.accepted else "rejected"
        metric = "lesion F1" if step.metric == "lesion_f1" else "Dice"
        lines.append(
            f"{step.step} ({target}): {metric} {step.dice_before:.4f} -> "
            f"{step.dice_after:.4f}, {verdict}"
        )
    where = "training cases (folds all)" if choice.on_training_cases else "validation cases"
    lines.append(f"post-processing chosen on {where}, rules written to {choice.path}")
    return lines
