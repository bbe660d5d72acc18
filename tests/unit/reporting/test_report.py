"""The report: one self-contained HTML file with every listed plot, also as a screenshot."""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support.paths import REPO

from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import write_demo_drops
from liquidity_core.reporting.report import build_report
from liquidity_core.training.cycle import run_training_cycle

DATA_PLOTS = ["distributions", "correlations", "turnover-over-time"]
MODEL_PLOTS = [
    "model-history",
    "predicted-vs-actual",
    "residuals-by-market-cap",
    "feature-importances",
    "candidates",
    "skill-by-snapshot",
]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.svgs, self.external = set(), 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "svg":
            self.svgs += 1
        for key in ("src", "href"):
            if attrs.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(attrs[key])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_report_without_data_says_so(settings, engine):
    page = _parse(build_report(settings))
    assert (
        "No market data has been ingested yet"
        in (settings.var_dir / "report" / "report.html").read_text()
    )
    assert page.svgs == 0


def test_report_holds_every_plot_and_no_network(settings, engine, tmp_path):
    write_demo_drops(tmp_path / "drops", coins=25, snapshots=24, seed=5, start="2024-03-01")
    ingest_paths([tmp_path / "drops"], settings=settings)
    result = run_training_cycle(settings, grid="fast", candidates=True)
    assert result["promoted"], result["reason"]

    path = build_report(settings, out_dir=tmp_path / "out")
    assert path == tmp_path / "out" / "report.html"
    page = _parse(path)
    assert set(DATA_PLOTS + MODEL_PLOTS) <= page.ids
    assert page.svgs >= 7, "plots are embedded as inline SVG"
    assert page.external == [], "the report loads nothing from the network"
    text = path.read_text(encoding="utf-8")
    assert result["version"] in text
    # The candidates are charted (matplotlib SVG) before their table.
    candidates = text[text.index("id='candidates'") :]
    assert candidates.index("<svg") < candidates.index("<table")

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (CI installs it)")
    shots = REPO / "test-artifacts"
    shots.mkdir(exist_ok=True)
    shot = shots / f"report-{settings.database_url.split(':')[0]}.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1200,4000",
            f"--screenshot={shot}",
            path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 10_000
