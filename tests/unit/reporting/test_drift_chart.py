"""The PSI-per-feature chart of /models: sorted bars, thresholds marked, safe SVG."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from liquidity_core.reporting.drift_chart import drift_svg

SVG = "{http://www.w3.org/2000/svg}"


def _drift(*features):
    return {
        "snapshot_ts": "2025-01-01T00:00:00+00:00",
        "model_version": "v1",
        "features": list(features),
    }


def _f(name, psi, threshold, flagged=False):
    return {"feature": name, "psi": psi, "threshold": threshold, "flagged": flagged, "n_rows": 40}


def _bars(root):
    return [r for r in root.iter(f"{SVG}rect") if "psi-bar" in (r.get("class") or "")]


def test_bars_are_sorted_largest_first_with_each_threshold_marked():
    drift = _drift(_f("small", 0.02, 0.3), _f("big", 0.6, 0.4, True), _f("mid", 0.2, 0.25))
    svg = str(drift_svg(drift))
    root = ET.fromstring(svg)
    bars = _bars(root)
    assert [b.find(f"{SVG}title").text.split(":")[0] for b in bars] == ["big", "mid", "small"]
    widths = [float(b.get("width")) for b in bars]
    assert widths == sorted(widths, reverse=True) and widths[-1] > 0
    ys = [float(b.get("y")) for b in bars]
    assert ys == sorted(ys), "one row per feature, top to bottom"
    marks = [m for m in root.iter(f"{SVG}line") if m.get("class") == "threshold"]
    assert [m.find(f"{SVG}title").text for m in marks] == [
        "big: threshold 0.400",
        "mid: threshold 0.250",
        "small: threshold 0.300",
    ]
    # The threshold mark sits where a bar of that PSI would end.
    x0 = float(bars[0].get("x"))
    scale = widths[0] / 0.6
    assert float(marks[0].get("x1")) == pytest.approx(x0 + 0.4 * scale, abs=0.15)
    assert bars[0].get("class") == "psi-bar flagged" and bars[1].get("class") == "psi-bar"
    assert bars[0].get("fill") != bars[1].get("fill")


def test_chart_is_accessible_and_needs_no_style_or_script():
    svg = str(drift_svg(_drift(_f("a", 0.1, 0.25), _f("b", 0.3, 0.25, True))))
    root = ET.fromstring(svg)
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text.startswith("Feature drift")
    assert "1 flagged" in root.find(f"{SVG}desc").text
    assert set(root.get("aria-labelledby").split()) == {"drift-svg-title", "drift-svg-desc"}
    assert not re.search(r"\sstyle=|<script|\son[a-z]+=", svg)
    assert "0.300 drift" in svg


def test_feature_names_are_escaped():
    svg = str(drift_svg(_drift(_f('x_<script>alert("1")</script>', 0.5, 0.25, True))))
    assert "<script" not in svg
    assert "x_&lt;script&gt;" in svg
    ET.fromstring(svg)  # still well-formed


def test_no_drift_says_so():
    for drift in (None, _drift()):
        svg = str(drift_svg(drift))
        root = ET.fromstring(svg)
        assert "No drift measured yet." in svg and not _bars(root)


def test_missing_or_infinite_psi_draws_no_bar():
    svg = str(
        drift_svg(_drift(_f("a", float("inf"), 0.25), _f("b", None, None), _f("c", 0.1, 0.25)))
    )
    root = ET.fromstring(svg)
    assert len(_bars(root)) == 1 and svg.count(">n/a<") == 2
