"""Charts of the forecast loop as inline SVG: realized accuracy over time, a coin's forecasts.

Like :mod:`liquidity_core.reporting.charts`: presentation attributes only (no ``style``, no
script), so the page's Content-Security-Policy applies unchanged.

- :func:`realized_svg` (``/models``): per model version and target snapshot, the realized
  R² (with the version's holdout R² as a dashed line beside it), the skill against
  persistence (0 = as good as persistence) and the interval coverage (with the nominal
  level ± 10 points shaded).
- :func:`coin_forecast_svg` (``/coins/<symbol>``): the coin's actual turnover, and each
  stored forecast at the snapshot it was for, with its interval as a bar.
"""

from __future__ import annotations

import math
from html import escape

import pandas as pd
from markupsafe import Markup

from liquidity_core.reporting.charts import finite_or_none, nice_ticks

PALETTE = ("#1f6feb", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#0a3069")


def _empty(title: str, text: str, width: int) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {width} 60" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<text x="10" y="35" fill="#57606a">{escape(text)}</text></svg>'
    )


class _Frame:
    """One plot area: time on x, a value on y."""

    def __init__(self, t0, t1, lo, hi, *, left, top, width, height):
        self.t0, self.t1 = t0, (t1 if t1 > t0 else t0 + 1.0)
        pad = (hi - lo) * 0.08 or 0.1
        self.lo, self.hi = lo - pad, hi + pad
        self.left, self.top, self.width, self.height = left, top, width, height

    def x(self, t: float) -> float:
        inset = 12
        return self.left + inset + (t - self.t0) / (self.t1 - self.t0) * (self.width - 2 * inset)

    def y(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)
        return self.top + (self.hi - v) / (self.hi - self.lo) * self.height

    def axes(self, label: str, *, fmt=lambda t: f"{t:g}") -> list[str]:
        parts = [
            f'<rect x="{self.left}" y="{self.top}" width="{self.width}" height="{self.height}" '
            'fill="#ffffff" stroke="#d0d7de"/>',
            f'<text x="{self.left}" y="{self.top - 6}" fill="#24292f" font-weight="600">'
            f"{escape(label)}</text>",
        ]
        for t in nice_ticks(self.lo, self.hi, 4):
            if self.lo <= t <= self.hi:
                y = self.y(t)
                parts.append(
                    f'<line x1="{self.left}" x2="{self.left + self.width}" y1="{y:.1f}" '
                    f'y2="{y:.1f}" stroke="{"#8c959f" if t == 0 else "#eaeef2"}"/>'
                    f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                    f'fill="#57606a">{escape(fmt(t))}</text>'
                )
        return parts

    def time_labels(self, times) -> list[str]:
        parts = []
        last_x = -1e9
        for t in sorted(set(times)):
            x = self.x(t)
            if x - last_x < 110:  # one label per ~110 units: dates never overlap
                continue
            last_x = x
            anchor = "end" if x > self.left + self.width - 40 else "middle"
            day = pd.Timestamp(t, unit="s", tz="UTC").strftime("%Y-%m-%d")
            parts.append(
                f'<text x="{x:.1f}" y="{self.top + self.height + 14}" text-anchor="{anchor}" '
                f'fill="#57606a">{day}</text>'
            )
        return parts


def _seconds(ts) -> float:
    return pd.Timestamp(ts).timestamp()


def _line(points: list[tuple[float, float]], colour: str, cls: str, dash: str = "") -> str:
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    if len(points) == 1:
        x, y = points[0]
        return f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
    return (
        f'<polyline class="{cls}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr} '
        f'points="{coords}"/>'
    )


def realized_svg(report: dict, *, width: int = 720) -> Markup:
    """Realized R², skill and coverage per target snapshot of every version that forecast.

    Parameters
    ----------
    report : dict
        :func:`liquidity_core.monitoring.accuracy.monitor`'s result.
    width : int
        Width of the drawing in SVG user units (it scales with the page).
    """
    title = "Realized accuracy of stored forecasts"
    versions = [v for v in report.get("versions", []) if v.get("per_snapshot")]
    if not versions:
        return _empty(title, "No forecast has met its outcome yet.", width)
    versions = sorted(versions, key=lambda v: str(v.get("created_at")))
    times = [_seconds(p["target_ts"]) for v in versions for p in v["per_snapshot"]]
    t0, t1 = min(times), max(times)
    left, panel_h, gap, top = 64, 120, 46, 56
    plot_w = width - left - 16
    panels = [
        ("realized_r2", "Realized R² (dashed: the version's holdout R²)"),
        ("skill", "Skill vs persistence (above 0: better than persistence)"),
        ("coverage", "Interval coverage (shaded: nominal ± 10 points)"),
    ]
    height = top + len(panels) * (panel_h + gap)
    parts = [
        f'<svg class="chart" id="realized-svg" role="img" aria-labelledby="realized-title" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="realized-title">{title}</title>',
    ]
    x = left
    for i, v in enumerate(versions):  # legend
        colour = PALETTE[i % len(PALETTE)]
        label = f"{v['version']} ({v['status']})"
        parts.append(
            f'<line x1="{x}" x2="{x + 18}" y1="14" y2="14" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{x + 22}" y="18" fill="#24292f">{escape(label)}</text>'
        )
        x += 30 + 7 * len(label)
    for k, (key, label) in enumerate(panels):
        values = [finite_or_none(p[key]) for v in versions for p in v["per_snapshot"]]
        if key == "realized_r2":
            values += [finite_or_none(v.get("holdout_r2")) for v in versions]
        if key == "coverage":
            values += [0.0, 1.0]
        if key == "skill":
            values.append(0.0)
        finite = [val for val in values if val is not None] or [0.0]
        frame = _Frame(
            t0,
            t1,
            min(finite),
            max(finite),
            left=left,
            top=top + k * (panel_h + gap),
            width=plot_w,
            height=panel_h,
        )
        fmt = (lambda t: f"{t:.0%}") if key == "coverage" else (lambda t: f"{t:g}")
        parts += frame.axes(label, fmt=fmt)
        if key == "coverage":
            nominal = finite_or_none(versions[-1].get("nominal_coverage")) or 0.8
            y_hi, y_lo = frame.y(min(nominal + 0.1, 1.0)), frame.y(nominal - 0.1)
            parts.append(
                f'<rect class="nominal-band" x="{left}" y="{y_hi:.1f}" width="{plot_w}" '
                f'height="{y_lo - y_hi:.1f}" fill="#dafbe1" opacity="0.6"/>'
            )
        for i, v in enumerate(versions):
            colour = PALETTE[i % len(PALETTE)]
            points = [
                (frame.x(_seconds(p["target_ts"])), frame.y(finite_or_none(p[key])))
                for p in v["per_snapshot"]
                if finite_or_none(p[key]) is not None
            ]
            if points:
                parts.append(_line(points, colour, f"series-{key}"))
            holdout = finite_or_none(v.get("holdout_r2"))
            if key == "realized_r2" and holdout is not None and points:
                y = frame.y(holdout)
                parts.append(
                    f'<line class="holdout-r2" x1="{points[0][0]:.1f}" x2="{points[-1][0]:.1f}" '
                    f'y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" stroke-dasharray="6 4"/>'
                )
        parts += frame.time_labels(times)
    parts.append("</svg>")
    return Markup("".join(parts))


def coin_forecast_svg(history: pd.DataFrame, forecasts: list[dict], *, width: int = 720) -> Markup:
    """A coin's actual turnover over time, with its stored forecasts and their intervals.

    Parameters
    ----------
    history : pandas.DataFrame
        The coin's snapshots (``snapshot_ts``, ``volume_24h``, ``market_cap``).
    forecasts : list of dict
        :func:`liquidity_core.monitoring.forecasts.coin_forecasts`.
    """
    title = "Actual turnover and past forecasts"
    if history.empty:
        return _empty(title, "No stored snapshots.", width)
    h = history.sort_values("snapshot_ts").tail(120)
    turnover = (h["volume_24h"].astype(float) / h["market_cap"].astype(float)).to_numpy()
    actual = [
        (_seconds(t), math.log10(v))
        for t, v in zip(h["snapshot_ts"], turnover, strict=True)
        if v > 0 and math.isfinite(v)
    ]
    start = actual[0][0] if actual else None
    shown = [f for f in forecasts if f["target_ts"] is not None]
    shown = [f for f in shown if start is None or _seconds(f["target_ts"]) >= start]
    times = [t for t, _ in actual] + [_seconds(f["target_ts"]) for f in shown]
    logs = [v for _, v in actual]
    logs += [math.log10(f[k]) for f in shown for k in ("low", "high", "predicted")]
    if not times:
        return _empty(title, "No stored snapshots.", width)
    height, left, top = 280, 64, 40
    frame = _Frame(
        min(times),
        max(times),
        min(logs),
        max(logs),
        left=left,
        top=top,
        width=width - left - 16,
        height=height - top - 40,
    )
    parts = [
        f'<svg class="chart" id="coin-forecast-svg" role="img" aria-labelledby="cf-title" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="cf-title">{title}</title>',
        *frame.axes("Turnover (volume / market cap, log scale)", fmt=lambda t: f"{10**t:.3g}"),
    ]
    for f in shown:
        x = frame.x(_seconds(f["target_ts"]))
        y_lo, y_hi = frame.y(math.log10(f["low"])), frame.y(math.log10(f["high"]))
        y_p = frame.y(math.log10(f["predicted"]))
        tip = escape(
            f"forecast for {str(f['target_ts'])[:10]} by {f['model_version']}: "
            f"{f['predicted']:.4g} ({f['low']:.4g} .. {f['high']:.4g})"
        )
        parts.append(
            f'<g class="forecast"><title>{tip}</title>'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_hi:.1f}" y2="{y_lo:.1f}" '
            f'stroke="#bf3989" stroke-width="5" opacity="0.35"/>'
            f'<circle cx="{x:.1f}" cy="{y_p:.1f}" r="3" fill="#bf3989"/></g>'
        )
    if actual:
        parts.append(_line([(frame.x(t), frame.y(v)) for t, v in actual], "#1f6feb", "actual"))
    parts += frame.time_labels(times)
    parts.append(
        f'<line x1="{left + 200}" x2="{left + 218}" y1="14" y2="14" stroke="#1f6feb" '
        f'stroke-width="2"/><text x="{left + 222}" y="18" fill="#24292f">actual</text>'
        f'<line x1="{left + 290}" x2="{left + 290}" y1="6" y2="22" stroke="#bf3989" '
        f'stroke-width="5" opacity="0.35"/><circle cx="{left + 290}" cy="14" r="3" '
        f'fill="#bf3989"/><text x="{left + 300}" y="18" fill="#24292f">forecast and its '
        "interval</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))
