"""Report pictures: three planes per structure, each lesion with its axes, lesion volumes.

Images are first turned to a canonical display orientation from the direction matrix (array
axes running towards patient superior, posterior and left), so that axial slices show the
patient's right on the left of the picture (radiological convention), and coronal and sagittal
slices have the head at the top, however the file stores the array. Pixels are drawn with their
physical aspect ratio. Slices are composed with numpy and Pillow (a matplotlib figure per slice
costs about 50 times more); the volume plot is a matplotlib ``Figure``. The caller turns each
into pixels once, for the HTML and the PDF alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
from scipy import ndimage

from medseg.io import Image
from medseg.report.findings import Findings
from medseg.report.lesions import Lesion
from medseg.report.measure import Structure

LESIONS_PER_SHEET = 12
PANEL_PX = 300
"""Each plane of a structure picture fits a square of this many pixels."""
TILE_PX = 200
"""Each lesion's crop fits a square of this many pixels."""
RGB = tuple[int, int, int]
_CT_WINDOW = (-160.0, 240.0)  # soft-tissue window, HU
_LONG, _SHORT = (255, 59, 48), (0, 199, 255)
_PALETTE: tuple[RGB, ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
)


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


def structure_picture(view: DisplayVolume, structure: Structure, colour: RGB) -> PIL.Image.Image:
    """Axial, coronal and sagittal slices through the centre of a non-empty structure.

    The structure is tinted and outlined in ``colour``; each slice is scaled to its physical
    aspect ratio within a :data:`PANEL_PX` square.
    """
    corners = np.array([view.to_display(c) for c in _corners(structure.bbox_index or ())])
    z, y, x = (int(np.rint(c)) for c in corners.mean(axis=0))
    sz, sy, sx = view.spacing
    planes = [  # (title, picture, labels, row mm, column mm); superior at the top for cor/sag
        ("axial", view.image[z], view.labels[z], sy, sx),
        ("coronal", view.image[::-1, y], view.labels[::-1, y], sz, sx),
        ("sagittal", view.image[::-1, :, x], view.labels[::-1, :, x], sz, sy),
    ]
    panels = []
    for title, picture, labs, row_mm, col_mm in planes:
        size = _fit(picture.shape, row_mm, col_mm, PANEL_PX)
        panel = _tinted(picture, labs == structure.label, view.window, size, colour, 0.3)
        draw = PIL.ImageDraw.Draw(panel)
        draw.text((4, 2), title, fill=(255, 255, 0), font=_font(13))
        if title == "axial":
            draw.text((4, size[1] // 2), "R", fill=(255, 255, 0), font=_font(13))
            draw.text((size[0] - 12, size[1] // 2), "L", fill=(255, 255, 0), font=_font(13))
        panels.append(panel)
    return _row(panels, structure.name.replace("_", " "))


def lesion_sheet(
    view: DisplayVolume, lesions: list[Lesion], colours: dict[int, RGB]
) -> PIL.Image.Image:
    """Each lesion's axial slice (cropped) with its long (red) and short (cyan) axes drawn."""
    cols = 4
    tiles = []
    for lesion in lesions:
        ends_long = [view.to_display(p) for p in lesion.long_axis_index]
        ends_short = [view.to_display(p) for p in lesion.short_axis_index]
        z = int(np.rint(ends_long[0][0]))
        box = np.array([view.to_display(c) for c in _corners(lesion.bbox_index)])
        half = max(12.0, 0.9 * float(np.ptp(box[:, 1:], axis=0).max()))
        cy, cx = box[:, 1].mean(), box[:, 2].mean()
        y0, y1 = int(max(cy - half, 0)), int(min(cy + half + 1, view.labels.shape[1]))
        x0, x1 = int(max(cx - half, 0)), int(min(cx + half + 1, view.labels.shape[2]))
        crop = view.image[z, y0:y1, x0:x1]
        size = _fit(crop.shape, view.spacing[1], view.spacing[2], TILE_PX)
        colour = colours.get(lesion.label, (255, 255, 0))
        mask = view.labels[z, y0:y1, x0:x1] == lesion.label
        tile = _tinted(crop, mask, view.window, size, colour, 0.0, nearest=True)
        draw = PIL.ImageDraw.Draw(tile)
        scale = (size[0] / crop.shape[1], size[1] / crop.shape[0])
        for ends, line_colour in ((ends_long, _LONG), (ends_short, _SHORT)):
            points = [((e[2] - x0 + 0.5) * scale[0], (e[1] - y0 + 0.5) * scale[1]) for e in ends]
            draw.line(points, fill=line_colour, width=2)
        caption = (
            f"#{lesion.lesion_id}  {lesion.volume_ml:.2f} ml\n"
            f"{lesion.long_axis_mm:.0f} × {lesion.short_axis_mm:.0f} mm, {lesion.side}"
        )
        tiles.append(_captioned(tile, caption, TILE_PX))
    rows = [_concat(tiles[i : i + cols], horizontal=True) for i in range(0, len(tiles), cols)]
    return _concat(rows, horizontal=False)


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


def label_colours(values: list[int]) -> dict[int, RGB]:
    """A distinct colour per label value (matplotlib's tab20 palette order)."""
    return {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(sorted(values))}


def _corners(bbox: tuple[tuple[int, int], ...]) -> list[tuple[float, float, float]]:
    """The 8 corner voxels of a ``((start, stop), ...)`` box, original index order."""
    (a0, a1), (b0, b1), (c0, c1) = bbox
    return [(a, b, c) for a in (a0, a1 - 1) for b in (b0, b1 - 1) for c in (c0, c1 - 1)]


def _fit(shape: tuple[int, ...], row_mm: float, col_mm: float, box: int) -> tuple[int, int]:
    """(width, height) in pixels that shows ``shape`` at its physical aspect within ``box``."""
    height_mm, width_mm = shape[0] * row_mm, shape[1] * col_mm
    scale = box / max(height_mm, width_mm)
    return max(1, round(width_mm * scale)), max(1, round(height_mm * scale))


def _tinted(
    picture: npt.NDArray[Any],
    mask: npt.NDArray[np.bool_],
    window: tuple[float, float],
    size: tuple[int, int],
    colour: RGB,
    alpha: float,
    *,
    nearest: bool = False,
) -> PIL.Image.Image:
    """Grey picture resized to ``size``, ``mask`` tinted by ``alpha`` and outlined."""
    low, high = window
    grey = np.clip((picture.astype(np.float32) - low) * (255.0 / (high - low)), 0, 255)
    resample = PIL.Image.Resampling.NEAREST if nearest else PIL.Image.Resampling.BILINEAR
    grey_img = PIL.Image.fromarray(grey.astype(np.uint8)).resize(size, resample)
    rgb = np.repeat(np.asarray(grey_img)[..., None], 3, axis=2).astype(np.float32)
    shown = PIL.Image.fromarray(mask.astype(np.uint8) * 255).resize(
        size, PIL.Image.Resampling.NEAREST
    )
    inside = np.asarray(shown) > 0
    edge = inside & ~ndimage.binary_erosion(inside)
    tint = np.asarray(colour, np.float32)
    rgb[inside] = rgb[inside] * (1 - alpha) + tint * alpha
    rgb[edge] = tint
    return PIL.Image.fromarray(rgb.astype(np.uint8))


def _captioned(tile: PIL.Image.Image, caption: str, box: int) -> PIL.Image.Image:
    """``tile`` centred in a white ``box``-wide cell under a two-line caption."""
    cell = PIL.Image.new("RGB", (box + 12, box + 44), "white")
    draw = PIL.ImageDraw.Draw(cell)
    draw.multiline_text((8, 4), caption, fill=(30, 30, 30), font=_font(13), spacing=2)
    cell.paste(tile, (6 + (box - tile.width) // 2, 40 + (box - tile.height) // 2))
    return cell


def _row(panels: list[PIL.Image.Image], title: str) -> PIL.Image.Image:
    """Panels side by side under a title."""
    body = _concat(panels, horizontal=True, gap=6)
    out = PIL.Image.new("RGB", (body.width, body.height + 28), "white")
    PIL.ImageDraw.Draw(out).text((6, 4), title, fill=(20, 20, 20), font=_font(17))
    out.paste(body, (0, 28))
    return out


def _concat(images: list[PIL.Image.Image], *, horizontal: bool, gap: int = 0) -> PIL.Image.Image:
    """Images next to (or below) each other on white, top/left aligned."""
    if horizontal:
        size = (
            sum(i.width for i in images) + gap * (len(images) - 1),
            max(i.height for i in images),
        )
    else:
        size = (
            max(i.width for i in images),
            sum(i.height for i in images) + gap * (len(images) - 1),
        )
    out = PIL.Image.new("RGB", size, "white")
    offset = 0
    for image in images:
        out.paste(image, (offset, 0) if horizontal else (0, offset))
        offset += (image.width if horizontal else image.height) + gap
    return out


@lru_cache(maxsize=4)
def _font(size: int) -> PIL.ImageFont.FreeTypeFont | PIL.ImageFont.ImageFont:
    """DejaVu Sans, shipped with matplotlib (Pillow's default font has no ``×``)."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return PIL.ImageFont.truetype(str(path), size)
    except OSError:
        return PIL.ImageFont.load_default(size=size)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
