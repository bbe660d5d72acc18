"""``liquidity report``: the EDA and model report."""

from __future__ import annotations

from pathlib import Path

from liquidity_core.cli.commands import command
from liquidity_core.settings import Settings

# --- report ------------------------------------------------------------------------------


def _report_args(p):
    p.add_argument("--out", type=Path, default=None, help="folder for report.html (var/report)")


@command("report", "write the EDA and model report (one HTML file)", arguments=_report_args)
def _report(args, settings: Settings):
    from liquidity_core.reporting.report import build_report

    path = build_report(settings, out_dir=args.out)
    return {"path": str(path), "text": f"wrote {path}"}, 0
