"""``liquidity`` commands of the forecast loop: forecast (store the champion's forecasts of
new snapshots) and monitor (their realized accuracy and coverage, and the alert)."""

from __future__ import annotations

from liquidity_core.cli.commands import command
from liquidity_core.settings import Settings


def _fmt(value, pattern: str = "{:.3f}") -> str:
    return "n/a" if value is None else pattern.format(value)


@command("forecast", "score the snapshots the champion has not scored yet (idempotent)")
def _forecast(args, settings: Settings):
    from liquidity_core.monitoring.forecasts import forecast_new_snapshots

    result = forecast_new_snapshots(settings)
    if result["model_version"] is None:
        return dict(result, text=result["reason"]), 0
    span = f" ({result['first'][:19]} .. {result['last'][:19]})" if result["snapshots"] else ""
    result["text"] = (
        f"{result['model_version']}: {result['rows']} forecasts stored for "
        f"{result['snapshots']} snapshot(s){span}"
    )
    return result, 0


def _monitor_args(p):
    p.add_argument(
        "--check",
        action="store_true",
        help="exit non-zero with the reason when the champion's alert fires",
    )


@command("monitor", "realized accuracy and coverage per model version", arguments=_monitor_args)
def _monitor(args, settings: Settings):
    from liquidity_core.monitoring.accuracy import MonitoringAlert, monitor

    report = monitor(settings)
    if args.check and report["alerts"]:
        raise MonitoringAlert("; ".join(report["alerts"]))
    lines = []
    for v in report["versions"]:
        lines.append(
            f"{v['version']} ({v['status']}): {v['rows']} outcomes in {v['snapshots']} "
            f"snapshot(s); realized R² {_fmt(v['realized_r2'])} (persistence "
            f"{_fmt(v['persistence_r2'])}, holdout {_fmt(v['holdout_r2'])}), skill "
            f"{_fmt(v['skill'])}, coverage {_fmt(v['coverage'], '{:.1%}')} of nominal "
            f"{_fmt(v['nominal_coverage'], '{:.0%}')}"
        )
    if not lines:
        lines.append("no stored forecasts yet: run `liquidity forecast`")
    lines += [f"ALERT: {reason}" for reason in report["alerts"]]
    report["text"] = "\n".join(lines)
    return report, 0
