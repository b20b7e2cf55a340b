"""A self-contained HTML report: box plots, a summary table and a gallery of the worst cases.

Every figure is a matplotlib PNG embedded as base64, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medseg.evaluate.html_parts import figure_png, img_tag
from medseg.evaluate.summary import is_distance, metric_columns

if TYPE_CHECKING:
    from medseg.evaluate.result import EvaluationResult

GALLERY_SIZE = 6
BOX_METRICS = (
    "dice",
    "iou",
    "hd95",
    "hd",
    "assd",
    "nsd",
    "sensitivity",
    "precision",
    "rel_volume_error",
    "lesion_f1",
    "betti_error",
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px}td,th{padding:3px 8px;border-bottom:1px solid #eee}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid img{width:320px}.meta{color:#555;font-size:13px}
.case img{width:100%;max-width:1000px}
"""


def box_plots(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(metric, base64 PNG) per metric: one box per class; infinite distances at the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(dict.fromkeys(str(r["class"]) for r in rows))
    available = metric_columns(rows)
    percentile_hd = [m for m in available if m.startswith("hd") and m[2:3].isdigit()]
    metrics = [m for m in BOX_METRICS if m in available]
    metrics += [m for m in percentile_hd if m not in metrics]
    plots = []
    for metric in metrics:
        data = []
        for name in classes:
            values = []
            for r in rows:
                if r["class"] != name:
                    continue
                v = float(r.get(metric, math.nan))
                if math.isinf(v) and is_distance(metric):
                    v = float(r["image_diagonal_mm"])
                if math.isfinite(v):
                    values.append(v)
            data.append(values)
        if not any(data):
            continue
        fig, ax = plt.subplots(figsize=(max(3.2, 0.9 * len(classes) + 1.5), 2.8))
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(classes) + 1), classes, rotation=30, ha="right")
        unit = " (mm; empty → diagonal)" if is_distance(metric) else ""
        ax.set_title(metric + unit, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        plots.append((metric, figure_png(fig)))
    return plots


OVERVIEW_METRICS = ("dice", "hd95", "assd", "nsd", "lesion_f1", "rel_volume_error")


def overview_table(summary: dict[str, Any]) -> str:
    """HTML table: one row per class, mean ± std of the headline metrics and case statuses."""
    per_class = summary["classes"]
    shown = [m for m in OVERVIEW_METRICS if any(m in stats for stats in per_class.values())]
    head = "".join(f"<th>{h}</th>" for h in ("class", *shown, "cases"))
    lines = [f"<table><tr>{head}</tr>"]
    for name, stats in per_class.items():
        cells = []
        for metric in shown:
            s = stats.get(metric, {})
            mean, std = s.get("mean"), s.get("std")
            cells.append("–" if mean is None else f"{mean:.3g} ± {std or 0:.2g}")
        counts = ", ".join(f"{k} {v}" for k, v in stats["status_counts"].items() if v)
        body = "".join(f'<td class="n">{c}</td>' for c in cells)
        lines.append(f"<tr><td>{html.escape(name)}</td>{body}<td>{counts}</td></tr>")
    lines.append("</table>")
    return "\n".join(lines)


def reliability_plot(calibration: dict[str, Any]) -> str:
    """Base64 PNG of the pooled reliability diagram: accuracy vs confidence per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rel = calibration["reliability"]
    edges = np.asarray(rel["bin_edges"])
    acc = np.array([np.nan if v is None else v for v in rel["accuracy"]])
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.bar(
        edges[:-1],
        np.nan_to_num(acc),
        width=np.diff(edges),
        align="edge",
        alpha=0.7,
        edgecolor="k",
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ece = calibration["ece"]["mean"]
    ax.set_title(
        f"reliability (mean per-case ECE {ece:.3f})" if ece is not None else "reliability",
        fontsize=10,
    )
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    return figure_png(fig)


def summary_table(summary: dict[str, Any]) -> str:
    """HTML table: one row per class × metric with mean, median, std, CI and counts."""
    head = "".join(
        f"<th>{h}</th>"
        for h in ("class", "metric", "mean", "median", "std", "95% CI", "n", "NaN", "inf")
    )
    lines = [f"<table><tr>{head}</tr>"]
    for name, stats in summary["classes"].items():
        counts = stats["status_counts"]
        status = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        lines.append(f'<tr><th colspan="9">{html.escape(name)} — cases: {status}</th></tr>')
        for metric, s in stats.items():
            if metric == "status_counts":
                continue
            ci = f"{_fmt(s['ci95_low'])} – {_fmt(s['ci95_high'])}"
            cells = [_fmt(s["mean"]), _fmt(s["median"]), _fmt(s["std"]), ci]
            cells += [str(s["n"]), str(s["n_nan"]), str(s["n_inf"])]
            body = "".join(f'<td class="n">{c}</td>' for c in cells)
            lines.append(f"<tr><td></td><td>{metric}</td>{body}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def worst_cases(rows: Sequence[dict[str, Any]], k: int = GALLERY_SIZE) -> list[tuple[str, float]]:
    """The ``k`` cases with the lowest mean Dice over classes (defined values only)."""
    scores: dict[str, list[float]] = {}
    for r in rows:
        d = float(r.get("dice", math.nan))
        scores.setdefault(str(r["case"]), [])
        if math.isfinite(d):
            scores[str(r["case"])].append(d)
    ranked = sorted((float(np.mean(v)) if v else math.nan, c) for c, v in scores.items())
    ranked = [(c, s) for s, c in ranked if math.isfinite(s)]
    return ranked[:k]


def find_image(images_dir: Path | None, case: str) -> Path | None:
    """First channel of a case in an image folder: ``case_0000.<ext>`` or ``case.<ext>``."""
    from medseg.evaluate.discovery import case_id_of

    if images_dir is None or not images_dir.is_dir():
        return None
    for path in sorted(images_dir.iterdir()):
        if case_id_of(path) in (f"{case}_0000", case):
            return path
    return None


def case_figure(
    case: str, score: float, pred_path: Path, ref_path: Path, image_path: Path | None
) -> str:
    """Image / reference / prediction panels on the slice (axis 0) of largest disagreement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from medseg.evaluate.discovery import read_label_map

    pred, _ = read_label_map(pred_path)
    ref, ref_img = read_label_map(ref_path)
    aspect = ref_img.spacing[-2] / ref_img.spacing[-1]
    image = None
    if image_path is not None:
        from medseg.io import read_image

        img = read_image(image_path)
        if img.spatial_shape == ref.shape:
            image = img.array[0].astype(np.float32)
    if ref.ndim == 3:
        disagreement = (pred != ref).sum(axis=(1, 2))
        z = int(np.argmax(disagreement))
        pred, ref = pred[z], ref[z]
        image = image[z] if image is not None else None
        where = f"slice {z} (axis 0), {int(disagreement[z])} voxels differ"
    else:
        where = f"{int((pred != ref).sum())} pixels differ"
    n_labels = int(max(pred.max(), ref.max(), 1))
    colours = plt.get_cmap("tab10")(np.arange(n_labels) % 10)
    cmap = ListedColormap(colours)
    background = image if image is not None else np.zeros(ref.shape, np.float32)
    lo, hi = np.percentile(background, [1, 99]) if image is not None else (0.0, 1.0)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    titles = ["image", "reference", "prediction", "difference"]
    for ax, title in zip(axes, titles, strict=True):
        ax.imshow(background, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", aspect=aspect)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    for ax, labels in ((axes[1], ref), (axes[2], pred)):
        shown = np.ma.masked_equal(labels, 0)
        ax.imshow(
            shown - 1,
            cmap=cmap,
            vmin=0,
            vmax=n_labels - 1,
            alpha=0.5,
            aspect=aspect,
            interpolation="nearest",
        )
    diff = np.zeros((*ref.shape, 4))
    diff[(pred != 0) & (ref == 0)] = (1.0, 0.2, 0.2, 0.8)  # false positive: red
    diff[(pred == 0) & (ref != 0)] = (0.2, 0.4, 1.0, 0.8)  # false negative: blue
    diff[(pred != ref) & (pred != 0) & (ref != 0)] = (1.0, 0.8, 0.0, 0.8)  # wrong class
    axes[3].imshow(diff, interpolation="nearest", aspect=aspect)
    axes[3].set_title("red: false positive, blue: missed, yellow: wrong label", fontsize=8)
    fig.suptitle(f"{case}: mean Dice {score:.3f}; {where}", fontsize=10)
    return figure_png(fig)


def render_report(
    result: EvaluationResult,
    *,
    pairs: Sequence[tuple[str, Path, Path]],
    images_dir: Path | None,
) -> str:
    """The whole report as one HTML string."""
    summary = result.summary
    paths = {case: (p, r) for case, p, r in pairs}
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>medseg evaluation</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>medseg evaluation</h1>",
        f"<p class='meta'>{summary['n_cases']} cases. Predictions: "
        f"{html.escape(summary['pred_dir'])}; references: {html.escape(summary['ref_dir'])}. "
        f"Boundary: {summary['options']['boundary']}; NSD tolerance (mm): "
        f"{html.escape(str(summary['options']['nsd_tolerance_mm']))}. "
        "Distances to an empty mask count as the image diagonal; cases where both masks are "
        "empty are left out and counted.</p>",
    ]
    if summary["unexpected_labels"]:
        items = ", ".join(f"{c}: {v}" for c, v in summary["unexpected_labels"].items())
        parts.append(f"<p><b>Label values outside the label set</b>: {html.escape(items)}</p>")
    parts.append("<h2>Overview (mean ± std)</h2>")
    parts.append(overview_table(summary))
    if "classification" in summary:
        from medseg.evaluate.classification_html import classification_section

        parts.append(classification_section(summary["classification"]))
    parts.append("<h2>Distributions</h2><div class='grid'>")
    parts += [img_tag(png, metric) for metric, png in box_plots(result.rows)]
    if "calibration" in summary:
        parts.append(img_tag(reliability_plot(summary["calibration"]), "reliability diagram"))
    parts.append("</div><h2>Worst cases</h2>")
    for case, score in worst_cases(result.rows):
        pred_path, ref_path = paths[case]
        figure = case_figure(case, score, pred_path, ref_path, find_image(images_dir, case))
        parts.append(f"<div class='case'>{img_tag(figure, case)}</div>")
    parts.append("<h2>All metrics</h2>")
    parts.append(summary_table(summary))
    parts.append("</body></html>")
    return "\n".join(parts)
