"""Server-side charts as inline SVG (no script, no external assets).

The SVG uses presentation attributes only (no ``style``), so the page's
Content-Security-Policy (``style-src 'self'``) applies to it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

SERIES = [
    # key, label, colour, dash
    ("holdout_r2", "challenger (this run)", "#1f6feb", ""),
    ("champion_holdout_r2", "champion at the time", "#8250df", "6 4"),
    ("persistence_r2", "persistence baseline", "#9a6700", "2 4"),
]


def finite_or_none(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo or 1.0
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def r2_history_svg(versions: Sequence[dict], *, width: int = 720, height: int = 300) -> Markup:
    """Holdout R² of each training run, oldest left, with the champion marked.

    Parameters
    ----------
    versions : sequence of dict
        ``model_versions`` rows (any order): ``version``, ``created_at``, ``status``,
        ``holdout_r2``, ``champion_holdout_r2``, ``persistence_r2``.
    width, height : int
        Size of the drawing in SVG user units (it scales with the page).

    Returns
    -------
    markupsafe.Markup
        An ``<svg>`` element, safe to insert in a template.
    """
    rows = sorted(versions, key=lambda v: (str(v.get("created_at")), str(v.get("version"))))
    title = "Holdout R² by training run"
    if not rows:
        return Markup(
            f'<svg class="chart" role="img" viewBox="0 0 {width} 60" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
            '<text x="10" y="35" fill="#57606a">No training runs yet.</text></svg>'
        )
    lo, hi = _r2_range(rows)
    left, right, top, bottom = 64, 16, 36, 64
    plot = _Plot(left, top, width - left - right, height - top - bottom, lo, hi, len(rows))
    parts = [
        f'<svg class="chart" role="img" aria-labelledby="r2-title r2-desc" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="r2-title">{title}</title>',
        f'<desc id="r2-desc">Holdout R² of {plot.n} training runs; the current champion is '
        "ringed; hollow points were not promoted.</desc>",
        f'<rect x="{left}" y="{top}" width="{plot.plot_w}" height="{plot.plot_h}" '
        'fill="#ffffff" stroke="#d0d7de"/>',
        *_grid_lines(plot),
        *_date_labels(rows, plot),
        *_series_lines(rows, plot),
        *_run_points(rows, plot),
        *_legend(left),
        "</svg>",
    ]
    return Markup("".join(parts))


def _r2_range(rows: Sequence[dict]) -> tuple[float, float]:
    """The R² axis: every series' values and zero, at least 0.1 tall, padded 8% each way."""
    values = [finite_or_none(r.get(k)) for r in rows for k, *_ in SERIES]
    finite = [v for v in values if v is not None] or [0.0]
    lo, hi = min(min(finite), 0.0), max(max(finite), 0.0)
    if hi - lo < 0.1:
        hi = lo + 0.1
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


@dataclass(frozen=True)
class _Plot:
    """The plot area (SVG user units), its R² range and the runs across it."""

    left: float
    top: float
    plot_w: float
    plot_h: float
    lo: float
    hi: float
    n: int
    inset: int = 24  # keeps the first and last points off the frame

    def x_of(self, i: int) -> float:
        inner = self.plot_w - 2 * self.inset
        return self.left + self.inset + (inner / 2 if self.n == 1 else i * inner / (self.n - 1))

    def y_of(self, v: float) -> float:
        return self.top + (self.hi - v) / (self.hi - self.lo) * self.plot_h


def _grid_lines(plot: _Plot) -> list[str]:
    """A horizontal line and label per tick of the R² axis (zero darker)."""
    parts = []
    for t in nice_ticks(plot.lo, plot.hi):
        if not plot.lo <= t <= plot.hi:
            continue
        y = plot.y_of(t)
        colour = "#8c959f" if t == 0 else "#eaeef2"
        parts.append(
            f'<line x1="{plot.left}" x2="{plot.left + plot.plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{colour}"/>'
            f'<text x="{plot.left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#57606a">'
            f"{t:g}</text>"
        )
    return parts


def _date_labels(rows: Sequence[dict], plot: _Plot) -> list[str]:
    """The training dates under the plot: at most about eight, and always the last one."""
    parts = []
    label_every = max(1, math.ceil(plot.n / 8))
    below = plot.top + plot.plot_h + 16
    for i, r in enumerate(rows):
        if i % label_every == 0 or i == plot.n - 1:
            x = plot.x_of(i)
            label = escape(str(r.get("created_at") or "")[:10])
            parts.append(
                f'<text x="{x:.1f}" y="{below}" text-anchor="end" '
                f'transform="rotate(-30 {x:.1f} {below})" fill="#57606a">'
                f"{label}</text>"
            )
    return parts


def _series_lines(rows: Sequence[dict], plot: _Plot) -> list[str]:
    """Each series as lines broken where a run has no value, the baselines also marked."""
    parts = []
    for key, _label, colour, dash in SERIES:
        points = [(plot.x_of(i), finite_or_none(r.get(key))) for i, r in enumerate(rows)]
        segment: list[str] = []
        paths = []
        for x, v in points:
            if v is None:
                if segment:
                    paths.append(segment)
                segment = []
            else:
                segment.append(f"{x:.1f},{plot.y_of(v):.1f}")
        if segment:
            paths.append(segment)
        if key != "holdout_r2":  # small marks, so a single run still shows its baselines
            for x, v in points:
                if v is not None:
                    parts.append(
                        f'<rect class="mark-{key}" x="{x - 3:.1f}" y="{plot.y_of(v) - 3:.1f}" '
                        f'width="6" height="6" fill="{colour}"/>'
                    )
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        for seg in paths:
            if len(seg) > 1:
                parts.append(
                    f'<polyline class="series-{key}" fill="none" stroke="{colour}" '
                    f'stroke-width="2"{dash_attr} points="{" ".join(seg)}"/>'
                )
    return parts


def _run_points(rows: Sequence[dict], plot: _Plot) -> list[str]:
    """A point per run with an R² (filled when promoted), the champion ringed and named."""
    parts = []
    for i, r in enumerate(rows):
        v = finite_or_none(r.get("holdout_r2"))
        if v is None:
            continue
        x, y = plot.x_of(i), plot.y_of(v)
        promoted = r.get("status") in ("champion", "retired")
        fill = "#1f6feb" if promoted else "#ffffff"
        version = escape(str(r.get("version")))
        parts.append(
            f'<circle class="run" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{fill}" '
            f'stroke="#1f6feb" stroke-width="2"><title>{version}: R² {v:.3f} '
            f"({escape(str(r.get('status')))})</title></circle>"
        )
        if r.get("status") == "champion":
            anchor = "end" if x > plot.left + plot.plot_w * 0.8 else "middle"
            parts.append(
                f'<circle class="champion-marker" cx="{x:.1f}" cy="{y:.1f}" r="9" '
                f'fill="none" stroke="#1a7f37" stroke-width="2.5"/>'
                f'<text x="{x + (0 if anchor == "middle" else 9):.1f}" '
                f'y="{y - 14 if y - 14 > plot.top + 12 else y + 24:.1f}" text-anchor="{anchor}" '
                f'fill="#1a7f37" font-weight="600">champion</text>'
            )
    return parts


def _legend(left: float) -> list[str]:
    """The series' line styles and names across the top."""
    parts = []
    legend_y = 18
    x = left
    for _key, label, colour, dash in SERIES:
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{x}" x2="{x + 22}" y1="{legend_y - 4}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash_attr}/>'
            f'<text x="{x + 28}" y="{legend_y}" fill="#24292f">{escape(label)}</text>'
        )
        x += 28 + 8 * len(label) + 18
    return parts
