"""The PSI of each feature on ``/models`` as an inline SVG bar chart.

One horizontal bar per feature, largest PSI at the top, with the feature's flag threshold
marked across its bar; flagged features are drawn in red and say so. Like
:mod:`liquidity_core.reporting.charts`: presentation attributes only (no ``style``, no
script), so the page's Content-Security-Policy applies unchanged.
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from liquidity_core.reporting.charts import finite_or_none, nice_ticks

BAR = "#1f6feb"
FLAGGED = "#cf222e"
THRESHOLD = "#24292f"
ROW = 24


def drift_svg(drift: dict | None, *, width: int = 720) -> Markup:
    """The PSI of each feature at the newest measured snapshot, its threshold marked.

    Parameters
    ----------
    drift : dict or None
        :func:`liquidity_core.monitoring.drift.latest_drift`: ``features`` is a list of
        ``{"feature", "psi", "threshold", "flagged", "n_rows"}``.
    width : int
        Width of the drawing in SVG user units (it scales with the page).

    Returns
    -------
    markupsafe.Markup
        An ``<svg>`` element, safe to insert in a template.
    """
    title = "Feature drift (PSI) against each feature's threshold"
    features = list((drift or {}).get("features") or [])
    if not features:
        return Markup(
            f'<svg class="chart" role="img" viewBox="0 0 {width} 60" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
            '<text x="10" y="35" fill="#57606a">No drift measured yet.</text></svg>'
        )
    rows = sorted(
        features, key=lambda f: (-(finite_or_none(f.get("psi")) or 0.0), str(f.get("feature")))
    )
    longest = max(len(str(f.get("feature"))) for f in rows)
    left = min(260, 16 + 7 * longest)
    top, right, bottom = 34, 90, 40
    plot_w = width - left - right
    height = top + ROW * len(rows) + bottom
    values = [finite_or_none(f.get(k)) for f in rows for k in ("psi", "threshold")]
    hi = max([v for v in values if v is not None] + [0.1]) * 1.08

    def x_of(v: float) -> float:
        return left + min(max(v, 0.0), hi) / hi * plot_w

    flagged = sum(1 for f in rows if f.get("flagged"))
    parts = [
        f'<svg class="chart" role="img" aria-labelledby="drift-svg-title drift-svg-desc" '
        f'id="drift-svg" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="drift-svg-title">{title}</title>',
        f'<desc id="drift-svg-desc">PSI of {len(rows)} features, largest first; the dark '
        f"mark on each bar is that feature's flag threshold; {flagged} flagged.</desc>",
        *_axis(left, top, plot_w, ROW * len(rows), hi, x_of),
        *(_bar(i, f, left, top, x_of) for i, f in enumerate(rows)),
        *_legend(left),
        "</svg>",
    ]
    return Markup("".join(parts))


def _axis(left, top, plot_w, plot_h, hi, x_of) -> list[str]:
    """The frame, a vertical grid line and label per PSI tick, and the axis name."""
    parts = [
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#ffffff" '
        'stroke="#d0d7de"/>'
    ]
    below = top + plot_h + 16
    for t in nice_ticks(0.0, hi, 5):
        if 0 <= t <= hi:
            x = x_of(t)
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
                f'stroke="{"#8c959f" if t == 0 else "#eaeef2"}"/>'
                f'<text x="{x:.1f}" y="{below}" text-anchor="middle" fill="#57606a">'
                f"{t:g}</text>"
            )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{below + 16}" text-anchor="middle" '
        'fill="#57606a">population stability index (PSI)</text>'
    )
    return parts


def _bar(i: int, f: dict, left: float, top: float, x_of) -> str:
    """One feature: its name, its bar (red when flagged), its threshold mark and value."""
    name = escape(str(f.get("feature")))
    psi, limit = finite_or_none(f.get("psi")), finite_or_none(f.get("threshold"))
    y = top + i * ROW
    mid = y + ROW / 2
    flagged = bool(f.get("flagged"))
    cls = "psi-bar flagged" if flagged else "psi-bar"
    out = [
        f'<g class="drift-row"><text x="{left - 8}" y="{mid + 4:.1f}" text-anchor="end" '
        f'fill="#24292f">{name}</text>'
    ]
    summary = f"{name}: PSI {'n/a' if psi is None else f'{psi:.3f}'}"
    if limit is not None:
        summary += f", threshold {limit:.3f}"
    summary += " (flagged)" if flagged else ""
    if psi is not None:
        out.append(
            f'<rect class="{cls}" x="{left}" y="{y + 5}" width="{x_of(psi) - left:.1f}" '
            f'height="{ROW - 10}" fill="{FLAGGED if flagged else BAR}">'
            f"<title>{summary}</title></rect>"
        )
    label = "n/a" if psi is None else f"{psi:.3f}" + (" drift" if flagged else "")
    end = x_of(max(psi or 0.0, limit or 0.0))
    weight = ' font-weight="600"' if flagged else ""
    out.append(
        f'<text x="{end + 6:.1f}" y="{mid + 4:.1f}" fill="{FLAGGED if flagged else "#57606a"}"'
        f"{weight}>{label}</text>"
    )
    if limit is not None:
        x = x_of(limit)
        out.append(
            f'<line class="threshold" x1="{x:.1f}" x2="{x:.1f}" y1="{y + 2}" '
            f'y2="{y + ROW - 2}" stroke="{THRESHOLD}" stroke-width="2.5">'
            f"<title>{name}: threshold {limit:.3f}</title></line>"
        )
    out.append("</g>")
    return "".join(out)


def _legend(left: float) -> list[str]:
    """What the bar colours and the dark mark mean, across the top."""
    y = 18
    items = [
        (f'<rect x="{left}" y="{y - 9}" width="14" height="10" fill="{BAR}"/>', "PSI"),
        (f'<rect x="{left + 70}" y="{y - 9}" width="14" height="10" fill="{FLAGGED}"/>', "flagged"),
        (
            f'<line x1="{left + 167}" x2="{left + 167}" y1="{y - 11}" y2="{y + 2}" '
            f'stroke="{THRESHOLD}" stroke-width="2.5"/>',
            "the feature's threshold",
        ),
    ]
    xs = (left + 20, left + 90, left + 176)
    return [
        f'{mark}<text x="{x}" y="{y}" fill="#24292f">{text}</text>'
        for (mark, text), x in zip(items, xs, strict=True)
    ]
