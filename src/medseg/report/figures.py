"""Report figures (matplotlib, Agg): three planes per structure, lesion axes, lesion volumes.

Images are first turned to a canonical display orientation from the direction matrix (array
axes running towards patient superior, posterior and left), so that axial slices show the
patient's right on the left of the picture (radiological convention), and coronal and sagittal
slices have the head at the top, however the file stores the array. Pixels are drawn with their
physical aspect ratio. Each function returns a matplotlib ``Figure``; the caller saves it to PNG
(HTML) or to a PDF page, so both documents show the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.io import Image
from medseg.report.findings import Findings
from medseg.report.lesions import Lesion
from medseg.report.measure import Structure

LESIONS_PER_SHEET = 12
MAX_PIXELS = 320
"""Slices are shown with at most this many pixels a side (the figure shows no more)."""
_CT_WINDOW = (-160.0, 240.0)  # soft-tissue window, HU
_LONG, _SHORT = "#ff3b30", "#00c7ff"


@dataclass(frozen=True)
class DisplayVolume:
    """Image (first channel) and labels in display orientation, with the index mapping.

    ``perm[k]`` is the original array axis shown as display axis ``k``; ``flip[k]`` says
    whether it is reversed. ``spacing`` is in display axis order (mm); ``window`` the grey range.
    """

    image: npt.NDArray[np.float32]
    labels: npt.NDArray[np.integer]
    spacing: tuple[float, float, float]
    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    window: tuple[float, float]

    def to_display(self, index: tuple[float, float, float]) -> npt.NDArray[np.float64]:
        """Map an original (fractional) voxel index to display indices."""
        shape = self.labels.shape
        out = np.array([index[p] for p in self.perm], dtype=np.float64)
        return np.where(self.flip, np.array(shape) - 1 - out, out)


def display_volume(image: Image, labels: npt.NDArray[np.integer], ct: bool) -> DisplayVolume:
    """Reorient ``image`` channel 0 and ``labels`` (Z, Y, X) for display (see module docstring)."""
    direction = image.direction
    perm = [0, 1, 2]
    free = [0, 1, 2]
    for component in range(3):  # physical z (S), y (P), x (L): the axis most aligned with each
        best = max(free, key=lambda j: abs(direction[component, j]))
        perm[component] = best
        free.remove(best)
    flip = tuple(bool(direction[c, perm[c]] < 0) for c in range(3))
    picture = np.transpose(image.array[0], perm)
    labs = np.transpose(labels, perm)
    flips = tuple(k for k in range(3) if flip[k])
    if flips:
        picture, labs = np.flip(picture, flips), np.flip(labs, flips)
    if ct:
        window = _CT_WINDOW
    else:
        sample = picture[:: max(1, picture.shape[0] // 16)]
        low, high = np.percentile(sample, [1, 99.5])
        window = (float(low), float(high if high > low else low + 1))
    return DisplayVolume(
        image=picture,
        labels=labs,
        spacing=tuple(image.spacing[p] for p in perm),  # type: ignore[arg-type]
        perm=tuple(perm),  # type: ignore[arg-type]
        flip=flip,  # type: ignore[arg-type]
        window=window,
    )


def structure_figure(view: DisplayVolume, structure: Structure, colour: Any) -> Any:
    """Axial, coronal and sagittal slices through the centre of a non-empty structure."""
    plt = _pyplot()
    label = structure.label
    corners = np.array([view.to_display(c) for c in _corners(structure.bbox_index or ())])
    z, y, x = (int(np.rint(c)) for c in corners.mean(axis=0))
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.8))
    planes = [
        ("axial", view.image[z], view.labels[z], view.spacing[1] / view.spacing[2], False),
        ("coronal", view.image[:, y], view.labels[:, y], view.spacing[0] / view.spacing[2], True),
        (
            "sagittal",
            view.image[:, :, x],
            view.labels[:, :, x],
            view.spacing[0] / view.spacing[1],
            True,
        ),
    ]
    for ax, (title, picture, labs, aspect, upside) in zip(axes, planes, strict=True):
        if upside:  # superior at the top
            picture, labs = picture[::-1], labs[::-1]
        step = max(1, -(-max(picture.shape) // MAX_PIXELS))
        picture, mask = picture[::step, ::step], labs[::step, ::step] == label
        ax.imshow(picture, cmap="gray", vmin=view.window[0], vmax=view.window[1], aspect=aspect)
        edge = mask & ~ndimage.binary_erosion(mask)
        ax.imshow(_overlay(mask, colour, 0.3, edge), aspect=aspect, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    axes[0].text(0.01, 0.5, "R", color="yellow", transform=axes[0].transAxes, fontsize=9)
    axes[0].text(0.97, 0.5, "L", color="yellow", transform=axes[0].transAxes, fontsize=9)
    fig.suptitle(structure.name.replace("_", " "), fontsize=11)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.86, wspace=0.04)
    return fig


def lesion_sheet(view: DisplayVolume, lesions: list[Lesion], label_colours: dict[int, Any]) -> Any:
    """Each lesion's axial slice (cropped) with its long (red) and short (cyan) axes drawn."""
    plt = _pyplot()
    cols = 4
    rows = max(1, -(-len(lesions) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(10.5, 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, lesion in zip(axes.ravel(), lesions, strict=False):
        ends_long = [view.to_display(p) for p in lesion.long_axis_index]
        ends_short = [view.to_display(p) for p in lesion.short_axis_index]
        z = int(np.rint(ends_long[0][0]))
        box = np.array([view.to_display(c) for c in _corners(lesion.bbox_index)])
        half = max(12.0, 0.9 * float(np.ptp(box[:, 1:], axis=0).max()))
        cy, cx = box[:, 1].mean(), box[:, 2].mean()
        y0, y1 = int(max(cy - half, 0)), int(min(cy + half + 1, view.labels.shape[1]))
        x0, x1 = int(max(cx - half, 0)), int(min(cx + half + 1, view.labels.shape[2]))
        aspect = view.spacing[1] / view.spacing[2]
        picture, labs = view.image[z, y0:y1, x0:x1], view.labels[z, y0:y1, x0:x1]
        ax.imshow(picture, cmap="gray", vmin=view.window[0], vmax=view.window[1], aspect=aspect)
        mask = labs == lesion.label
        if mask.any():
            colour = label_colours.get(lesion.label, "yellow")
            ax.contour(mask, levels=[0.5], colors=[colour], linewidths=0.8)
        for ends, colour in ((ends_long, _LONG), (ends_short, _SHORT)):
            ax.plot([e[2] - x0 for e in ends], [e[1] - y0 for e in ends], color=colour, lw=1.6)
        ax.set_xlim(-0.5, x1 - x0 - 0.5)
        ax.set_ylim(y1 - y0 - 0.5, -0.5)
        ax.set_title(
            f"#{lesion.lesion_id} {lesion.volume_ml:.2f} ml\n"
            f"{lesion.long_axis_mm:.0f} × {lesion.short_axis_mm:.0f} mm, {lesion.side}",
            fontsize=8,
        )
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.45 / (2.8 * rows), hspace=0.3)
    return fig


def volume_plot(findings: Findings) -> Any:
    """Bar chart of lesion volumes; with a prior, prior and current volume per matched group."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10.5, 3.2))
    change = findings.change
    if change is None:
        lesions = list(findings.lesions)
        ax.bar([str(les.lesion_id) for les in lesions], [les.volume_ml for les in lesions])
        ax.set_xlabel("lesion")
        ax.set_title("Lesion volumes", fontsize=10)
    else:
        names = [
            ",".join(map(str, m.current_ids)) or f"prior {','.join(map(str, m.prior_ids))}"
            for m in change.matches
        ]
        positions = np.arange(len(names))
        ax.bar(positions - 0.2, [m.volume_prior_ml for m in change.matches], 0.4, label="prior")
        ax.bar(positions + 0.2, [m.volume_current_ml for m in change.matches], 0.4, label="now")
        ax.set_xticks(positions, names, fontsize=7)
        ax.set_xlabel("lesion (current id)")
        ax.legend(fontsize=8)
        ax.set_title("Lesion volumes, prior and current scan", fontsize=10)
    ax.set_ylabel("volume (ml)")
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.18, top=0.9)
    return fig


def label_colours(values: list[int]) -> dict[int, Any]:
    """A distinct colour per label value (tab10, then tab20)."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(values) <= 10 else "tab20")
    return {v: cmap(i % cmap.N) for i, v in enumerate(sorted(values))}


def _corners(bbox: tuple[tuple[int, int], ...]) -> list[tuple[float, float, float]]:
    """The 8 corner voxels of a ``((start, stop), ...)`` box, original index order."""
    (a0, a1), (b0, b1), (c0, c1) = bbox
    return [(a, b, c) for a in (a0, a1 - 1) for b in (b0, b1 - 1) for c in (c0, c1 - 1)]


def _overlay(
    mask: npt.NDArray[np.bool_], colour: Any, alpha: float, edge: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """RGBA picture: ``mask`` tinted with ``alpha``, its ``edge`` opaque."""
    rgba = np.zeros((*mask.shape, 4), np.float32)
    rgba[mask] = (*colour[:3], alpha)
    rgba[edge] = (*colour[:3], 1.0)
    return rgba


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
