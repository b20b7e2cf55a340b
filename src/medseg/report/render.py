"""report.html and report.pdf: the same summary, tables and figures in two documents.

The HTML is self-contained (figures embedded as base64 PNG, inline CSS). The PDF is written with
matplotlib's ``PdfPages`` (no system libraries): a text page with the summary and tables, then
one page per figure.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import PIL.Image

from medseg._atomic import atomic_path, write_text_atomic
from medseg.io import Image
from medseg.report.clinical import ClinicalReport
from medseg.report.figures import (
    LESIONS_PER_SHEET,
    display_volume,
    label_colours,
    lesion_sheet,
    structure_picture,
    volume_plot,
)

FIGURE_DPI = 90
DISCLAIMER = (
    "Automated measurements from a segmentation; not a diagnosis. Lengths are edge to edge in "
    "mm, volumes in ml; coordinates are patient LPS (x to the left, y posterior, z superior)."
)
_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:26px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
td,th{padding:3px 8px;border-bottom:1px solid #eee}th{background:#f4f4f4;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.summary{font-size:16px;line-height:1.5;
background:#f6f8fa;padding:10px 14px;border-left:4px solid #4a90d9}.meta{color:#555;font-size:12px}
.flag{color:#a15c00}img{max-width:100%}
"""


@dataclass(frozen=True)
class Table:
    """A titled table: header and rows of already formatted cells."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def report_tables(report: ClinicalReport) -> list[Table]:
    """Structures, lesions, change and flags as formatted tables (empty ones left out)."""
    f = report.findings
    tables = []
    channel = next((k for s in f.structures for k in s.intensity), None)
    with_map = any(s.mean_uncertainty is not None for s in f.structures)
    rows = []
    for s in f.structures:
        stats = s.intensity.get(channel) if channel else None
        size = " × ".join(f"{v:.0f}" for v in s.bbox_size_mm) if s.bbox_size_mm else "-"
        rows.append(
            (
                s.name,
                f"{s.volume_ml:.2f}",
                str(s.voxels),
                f"{stats.mean:.1f} ± {stats.std:.1f} {stats.unit}" if stats else "-",
                f"{stats.p5:.0f} / {stats.median:.0f} / {stats.p95:.0f}" if stats else "-",
                size,
                *((_uncertainty(s.mean_uncertainty),) if with_map else ()),
            )
        )
    tables.append(
        Table(
            "Structures",
            (
                "structure",
                "volume (ml)",
                "voxels",
                "mean ± sd",
                "p5 / median / p95",
                "box z×y×x (mm)",
                *(("uncertainty",) if with_map else ()),
            ),
            tuple(rows),
        )
    )
    if len(f.lesions):
        tables.append(
            Table(
                "Lesions",
                (
                    "#",
                    "class",
                    "volume (ml)",
                    "longest (mm)",
                    "long × short (mm)",
                    "side",
                    "in / touching",
                    "centroid LPS (mm)",
                    *(("uncertainty",) if with_map else ()),
                ),
                tuple(
                    (
                        str(les.lesion_id),
                        les.label_name,
                        f"{les.volume_ml:.3f}",
                        f"{les.longest_diameter_mm:.1f}",
                        f"{les.long_axis_mm:.1f} × {les.short_axis_mm:.1f}",
                        les.side,
                        ", ".join(les.structures) or "-",
                        ", ".join(f"{c:.0f}" for c in les.centroid_lps_mm),
                        *((_uncertainty(les.mean_uncertainty),) if with_map else ()),
                    )
                    for les in f.lesions
                ),
            )
        )
    if f.change is not None:
        tables.append(
            Table(
                "Change since the prior scan",
                ("now", "prior", "status", "prior (ml)", "now (ml)", "change"),
                tuple(
                    (
                        ",".join(map(str, m.current_ids)) or "-",
                        ",".join(map(str, m.prior_ids)) or "-",
                        m.status,
                        f"{m.volume_prior_ml:.3f}",
                        f"{m.volume_current_ml:.3f}",
                        "-" if m.change_percent is None else f"{m.change_percent:+.0f} %",
                    )
                    for m in f.change.matches
                ),
            )
        )
    if f.flags:
        tables.append(
            Table(
                "Quality flags",
                ("flag", "concerns", "detail"),
                tuple((x.code, x.target, x.message) for x in f.flags),
            )
        )
    return tables


@dataclass(frozen=True)
class Picture:
    """A rendered figure, drawn once for both documents: caption, RGB pixels and PNG bytes."""

    caption: str
    pixels: npt.NDArray[np.uint8]
    png: bytes


def render_figures(report: ClinicalReport, image: Image, segmentation: Image) -> list[Picture]:
    """One picture per non-empty structure, per sheet of lesions, and the volume plot."""
    f = report.findings
    view = display_volume(image, segmentation.array[0], (f.modality or "").upper() == "CT")
    colours = label_colours([s.label for s in f.structures])
    pictures = [
        _picture(
            f"{s.name}: axial, coronal and sagittal slices through its centre",
            structure_picture(view, s, colours[s.label]),
        )
        for s in f.structures
        if s.voxels and not s.is_lesion_class
    ]
    lesions = list(f.lesions)
    for start in range(0, len(lesions), LESIONS_PER_SHEET):
        chunk = lesions[start : start + LESIONS_PER_SHEET]
        caption = (
            f"Lesions {chunk[0].lesion_id}-{chunk[-1].lesion_id}: axial slice of largest area; "
            "long axis red, short axis cyan"
        )
        pictures.append(_picture(caption, lesion_sheet(view, chunk, colours)))
    if lesions or (f.change is not None and f.change.matches):
        pictures.append(_picture("Lesion volumes", _figure_to_image(volume_plot(f))))
    return pictures


def _picture(caption: str, image: PIL.Image.Image) -> Picture:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return Picture(caption, np.asarray(image), buffer.getvalue())


def _figure_to_image(fig: Any) -> PIL.Image.Image:
    import matplotlib.pyplot as plt

    fig.set_dpi(FIGURE_DPI)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return PIL.Image.fromarray(pixels)


def write_html(report: ClinicalReport, pictures: list[Picture], path: Path) -> Path:
    """Write the self-contained ``report.html``."""
    f = report.findings
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>medseg report: {html.escape(f.case_id)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Report: {html.escape(f.case_id)}</h1>",
        f"<p class='meta'>{html.escape(_meta_line(report))}</p>",
        f"<p class='summary'>{html.escape(report.summary)}</p>",
    ]
    if report.custom_summary:
        parts.append(f"<p class='summary'>{html.escape(report.custom_summary)}</p>")
    if f.change is not None:
        parts.append(f"<p class='meta'>{html.escape(f.change.note)}</p>")
    for table in report_tables(report):
        parts.append(f"<h2>{html.escape(table.title)}</h2>{_html_table(table)}")
    parts.append("<h2>Images</h2>")
    for picture in pictures:
        data = base64.b64encode(picture.png).decode("ascii")
        caption = html.escape(picture.caption)
        parts.append(
            f"<figure><img alt='{caption}' src='data:image/png;base64,{data}'>"
            f"<figcaption class='meta'>{caption}</figcaption></figure>"
        )
    parts.append(f"<p class='meta'>{html.escape(DISCLAIMER)}</p></body></html>")
    write_text_atomic("\n".join(parts), path)
    return path


def write_pdf(report: ClinicalReport, pictures: list[Picture], path: Path) -> Path:
    """Write ``report.pdf``: text pages (summary, tables), then one page per picture."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with atomic_path(path) as tmp, PdfPages(tmp) as pdf:
        for page in _text_pages(report):
            pdf.savefig(page)
            plt.close(page)
        for picture in pictures:  # pixels placed 1:1 (figimage): no resampling, no axes
            height, width = picture.pixels.shape[:2]
            band = round(0.3 * FIGURE_DPI)  # caption band under the picture, pixels
            fig = plt.figure(figsize=(width / FIGURE_DPI, (height + band) / FIGURE_DPI))
            fig.figimage(picture.pixels, xo=0, yo=band)
            fig.text(0.01, 0.3 * band / (height + band), picture.caption, fontsize=7, color="#555")
            pdf.savefig(fig, dpi=FIGURE_DPI)
            plt.close(fig)
    return path


def _uncertainty(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _meta_line(report: ClinicalReport) -> str:
    f = report.findings
    spacing = " × ".join(f"{s:g}" for s in f.spacing_mm)
    shape = " × ".join(map(str, f.shape))
    return (
        f"{f.sources.get('image', '')} — {shape} voxels of {spacing} mm (z, y, x), "
        f"orientation {f.orientation}, modality {f.modality or 'unknown'}. {DISCLAIMER}"
    )


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join(
        "<tr>" + "".join(f"<td{_num_class(c)}>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in table.rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _num_class(cell: str) -> str:
    return " class='n'" if cell[:1].isdigit() or (cell[:1] in "+-" and cell[1:2].isdigit()) else ""


def _text_pages(report: ClinicalReport) -> Iterator[Any]:
    """A4 portrait pages of monospaced text: title, summary, notes and every table."""
    import matplotlib.pyplot as plt

    lines = [f"Report: {report.findings.case_id}", ""]
    for paragraph in (report.summary, report.custom_summary, _meta_line(report)):
        if paragraph:
            lines += [*_wrap(paragraph), ""]
    if report.findings.change is not None:
        lines += [*_wrap(report.findings.change.note), ""]
    for table in report_tables(report):
        lines += [table.title, *_text_table(table), ""]
    per_page = 70
    for start in range(0, len(lines), per_page):
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(
            0.05,
            0.97,
            "\n".join(lines[start : start + per_page]),
            family="monospace",
            fontsize=7,
            va="top",
        )
        yield fig


def _wrap(text: str, width: int = 100) -> list[str]:
    """Lines of at most ``width`` characters; a number stays on the line of its unit."""
    keep = re.compile(r"(?<=\d) (?=%|ml|mm)")
    return [line.replace("\u00a0", " ") for line in textwrap.wrap(keep.sub("\u00a0", text), width)]


def _text_table(table: Table, max_width: int = 40) -> list[str]:
    """Monospaced table; a cell wider than ``max_width`` wraps onto continuation lines."""
    cells = [table.header, *table.rows]
    widths = [min(max(len(row[i]) for row in cells), max_width) for i in range(len(table.header))]
    out = []
    for row in cells:
        wrapped = [textwrap.wrap(c, w) or [""] for c, w in zip(row, widths, strict=True)]
        for parts in itertools.zip_longest(*wrapped, fillvalue=""):
            out.append("  ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths))
    return out
