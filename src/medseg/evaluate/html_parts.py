"""Pieces shared by the evaluation's HTML report sections: figures as inline PNG images."""

from __future__ import annotations

import base64
import html
import io
from typing import Any


def figure_png(fig: Any) -> str:
    """A matplotlib figure as base64 PNG (90 dpi, tight box); the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def img_tag(data: str, alt: str) -> str:
    """An ``<img>`` element showing base64 PNG ``data``."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
