"""The report's case-level classification section: counts, accuracy, AUC, confusion, ROC curves."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from medseg.evaluate.classification import roc_auc
from medseg.evaluate.html_parts import figure_png, img_tag


def roc_plot(result: dict[str, Any]) -> str:
    """Base64 PNG of the ROC curve (binary: the second class; else one curve per class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = result["classes"]
    cases = list(result["per_case"].values())
    shown = [classes[1]] if len(classes) == 2 else classes
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    for name in shown:
        positive = np.array([c["true"] == name for c in cases])
        scores = np.array([float(c["probabilities"][name]) for c in cases])
        if positive.all() or not positive.any():
            continue
        fpr, tpr = _roc_points(positive, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(positive, scores):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="gray")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC: {result['target']}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return figure_png(fig)


def _roc_points(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0)."""
    thresholds = np.unique(scores)[::-1]
    tpr = [0.0] + [float((positive & (scores >= t)).sum() / positive.sum()) for t in thresholds]
    fpr = [0.0] + [float((~positive & (scores >= t)).sum() / (~positive).sum()) for t in thresholds]
    return np.array(fpr), np.array(tpr)


def classification_section(result: dict[str, Any]) -> str:
    """HTML: the headline figures, the confusion matrix and the ROC curve."""

    classes = result["classes"]
    acc = result["accuracy"]
    auc = result["auc"]
    lines = [
        f"<h2>Case-level classification: {html.escape(result['target'])}</h2>",
        f"<p class='meta'>{result['n']} cases scored"
        + (f", {len(result['unscored'])} left out" if result["unscored"] else "")
        + f". Case probabilities: {html.escape(result['method'])}. "
        f"AUC: {html.escape(result['auc_method'])}.</p>",
        "<table><tr><th>accuracy</th><th>correct</th><th>AUC</th>"
        + "".join(f"<th>{html.escape(c)} (true cases)</th>" for c in classes)
        + "</tr><tr>"
        + f"<td class='n'>{'–' if acc is None else f'{acc:.3f}'}</td>"
        + f"<td class='n'>{result['correct']} / {result['n']}</td>"
        + f"<td class='n'>{'–' if auc is None else f'{auc:.3f}'}</td>"
        + "".join(f"<td class='n'>{result['counts'][c]}</td>" for c in classes)
        + "</tr></table>",
        "<p class='meta'>Confusion matrix (rows: true class, columns: predicted)</p>",
        "<table><tr><th></th>" + "".join(f"<th>{html.escape(c)}</th>" for c in classes) + "</tr>",
    ]
    for name, row in zip(classes, result["confusion"], strict=True):
        cells = "".join(f"<td class='n'>{v}</td>" for v in row)
        lines.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    lines.append("</table>")
    if result["n"] and auc is not None:
        lines.append(f"<div class='grid'>{img_tag(roc_plot(result), 'ROC curve')}</div>")
    if result["unscored"]:
        items = ", ".join(f"{c} ({why})" for c, why in result["unscored"].items())
        lines.append(f"<p class='meta'>Left out: {html.escape(items)}</p>")
    return "\n".join(lines)
