"""HTML pieces the reports share: inline SVG plots and tables (no network needed)."""

from __future__ import annotations

import html
import io

import numpy as np
import pandas as pd


def svg(fig) -> str:
    """A matplotlib figure as inline SVG text (the figure is closed)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def figure(width: float = 7.0, height: float = 3.6):
    """A new matplotlib figure and axes (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def table(frame: pd.DataFrame, *, float_format: str = "{:.4g}") -> str:
    """A DataFrame as an HTML table, floats formatted with ``float_format``."""

    def cell(value) -> str:
        if isinstance(value, float | np.floating):
            return "" if pd.isna(value) else float_format.format(value)
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
