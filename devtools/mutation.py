"""Mutation testing of the decision core with mutmut, one module at a time, in a budget.

``python -m devtools.mutation [module ...]`` (``make mutation``) runs mutmut on each module
of :data:`MODULES` in a copy of the project under ``var/mutation/<name>/``, with mutmut's
``only_mutate`` set to the module and its test selection to the module's tests, so each
module's mutants run only the tests relevant to it (and of those, mutmut runs only the
tests that call the mutated function). Each module gets ``MUTATION_BUDGET`` seconds
(default 600); mutants not reached in time are reported as not run.

The report (``var/mutation/report.md``) lists per module the killed, surviving and
equivalent mutants and the kill rate (killed / non-equivalent mutants run), and the diff
of every survivor; a module not run this time keeps the figures of its last run.
Equivalent mutants are listed, each with the reason, in
``devtools/mutation_equivalent.toml``. The exit status is 1 when a module's kill rate is
below ``MUTATION_MIN_RATE`` (default 0.85).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "var" / "mutation"
EQUIVALENT_FILE = REPO / "devtools" / "mutation_equivalent.toml"
#: What a work copy holds besides the package: what the tests import and read.
COPY = ["liquidity_core", "tests", "devtools", "webapp", "plugins", "dags", "sql", "pyproject.toml"]

#: The decision core: module -> the tests that check it (pytest arguments: files, and
#: ``--deselect`` for slow tests there that check other things).
MODULES = {
    "liquidity_core/learn/splits.py": [
        "tests/unit/learn/test_splits.py",
        "tests/unit/learn/test_splits_limits.py",
    ],
    "liquidity_core/learn/estimators.py": ["tests/unit/learn/test_estimators.py"],
    "liquidity_core/features/windows.py": ["tests/unit/features/test_windows.py"],
    "liquidity_core/training/compare.py": [
        "tests/unit/training/test_decision.py",
        "tests/unit/training/test_compare.py",
    ],
    "liquidity_core/learn/intervals.py": [
        "tests/unit/learn/test_interval_bounds.py",
        "tests/unit/learn/test_intervals.py",
        # a whole training run, checked by the training tests
        "--deselect=tests/unit/learn/test_intervals.py::"
        "test_training_records_the_calibration_and_the_holdout_coverage",
    ],
    "liquidity_core/store/identity.py": [
        "tests/unit/store/test_identity.py",
        "tests/unit/store/test_identity_rules.py",
        # training, serving and the web app across a rename: their own tests' concern
        "--deselect=tests/unit/store/test_identity.py::test_training_panel_is_continuous_across"
        "_the_rename",
        "--deselect=tests/unit/store/test_identity.py::test_prediction_for_the_new_name_uses_the"
        "_whole_history",
        "--deselect=tests/unit/store/test_identity.py::test_coin_page_shows_both_names",
    ],
    "liquidity_core/ingest/ledger.py": [
        "tests/unit/ingest/test_ledger.py",
        "tests/unit/ingest/test_ingest.py",
        "tests/unit/ingest/test_ingest_stream.py",
        # the command line's exit codes and output, not the ledger
        "--deselect=tests/unit/ingest/test_ingest.py::test_cli_exit_codes_lines_and_json",
        "--deselect=tests/unit/ingest/test_ingest.py::test_cli_with_an_unreachable_database",
        # the installed command in a subprocess: it imports the checkout, never the mutant
        "--deselect=tests/unit/ingest/test_ingest.py::test_a_kill_mid_load_leaves_nothing",
        "--deselect=tests/unit/ingest/test_ingest.py::test_two_concurrent_runs_on_the_same_file",
        "--deselect=tests/unit/ingest/test_ingest.py::test_two_concurrent_runs_on_overlapping",
    ],
}


def _mutmut() -> str:
    return str(Path(sys.executable).with_name("mutmut"))


def equivalent_mutants() -> dict[str, str]:
    """Mutant name -> why it is equivalent (``devtools/mutation_equivalent.toml``)."""
    if not EQUIVALENT_FILE.exists():
        return {}
    data = tomllib.loads(EQUIVALENT_FILE.read_text())
    return {name: reason for table in data.values() for name, reason in table.items()}


def prepare(module: str) -> Path:
    """A fresh copy of the project for ``module``, its mutmut config narrowed to it."""
    work = WORK / Path(module).stem
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "mutants")
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, work / name)
    tests = [t for t in MODULES[module] if t.startswith("-") or (REPO / t).exists()]
    # The tests read the real samples beside the checkout (support.paths.SHARED_DATA).
    shared = REPO.parent / "shared"
    if shared.exists():
        (work / "shared").symlink_to(shared)
    config = work / "pyproject.toml"
    config.write_text(
        config.read_text()
        + f"only_mutate = {json.dumps([module])}\n"
        + f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
    )
    return work


def run_module(module: str, budget: float, children: int) -> tuple[Path, str]:
    """Run mutmut on ``module`` for at most ``budget`` seconds; its work copy and outcome."""
    work = prepare(module)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    log = (work / "mutmut.log").open("w")
    proc = subprocess.Popen(
        [_mutmut(), "run", "--max-children", str(children)],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=budget)
        outcome = "finished" if proc.returncode == 0 else f"mutmut exited {proc.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        outcome = f"budget of {budget:g}s used up"
    log.close()
    return work, outcome


def results(work: Path, module: str) -> dict[str, str]:
    """Mutant name -> mutmut status (killed, survived, timeout, not checked, ...)."""
    from mutmut.stats import status_by_exit_code

    meta = work / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: status_by_exit_code.get(code, str(code)) for name, code in codes.items()}


def show(work: Path, name: str) -> str:
    proc = subprocess.run(
        [_mutmut(), "show", name], cwd=work, capture_output=True, text=True, timeout=60
    )
    return proc.stdout.strip() or proc.stderr.strip()


def summarize(module: str, statuses: dict[str, str], equivalent: dict[str, str]) -> dict:
    killed = [n for n, s in statuses.items() if s in ("killed", "timeout", "caught by type check")]
    survived = [n for n, s in statuses.items() if s in ("survived", "suspicious", "no tests")]
    equiv = [n for n in survived if n in equivalent]
    live = [n for n in survived if n not in equivalent]
    not_run = [n for n, s in statuses.items() if s in ("not checked", "skipped")]
    judged = len(killed) + len(live)
    return {
        "module": module,
        "total": len(statuses),
        "killed": killed,
        "survived": live,
        "equivalent": equiv,
        "not_run": not_run,
        "rate": len(killed) / judged if judged else None,
    }


def report(rows: list[dict], outcomes: dict, works: dict, equivalent: dict) -> str:
    lines = [
        "# Mutation testing of the decision core",
        "",
        "| module | mutants | killed | survived | equivalent | not run | kill rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = "-" if r["rate"] is None else f"{r['rate']:.0%}"
        lines.append(
            f"| {r['module']} | {r['total']} | {len(r['killed'])} | {len(r['survived'])} | "
            f"{len(r['equivalent'])} | {len(r['not_run'])} | {rate} |"
        )
    lines.append("")
    for r in rows:
        lines += [f"## {r['module']} ({outcomes[r['module']]})", ""]
        if not r["survived"]:
            lines += ["No surviving mutants.", ""]
        for name in r["survived"]:
            lines += [f"### {name}", "", "```diff", show(works[r["module"]], name), "```", ""]
        for name in r["equivalent"]:
            lines += [f"- equivalent: `{name}`: {equivalent[name]}"]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    modules = [m for m in MODULES if not argv or any(a in m for a in argv)]
    budget = float(os.environ.get("MUTATION_BUDGET", "600"))
    children = int(os.environ.get("MUTATION_CHILDREN", "2"))
    min_rate = float(os.environ.get("MUTATION_MIN_RATE", "0.85"))
    equivalent = equivalent_mutants()
    rows, outcomes, works = [], {}, {}
    for module in modules:
        started = time.monotonic()
        work, outcome = run_module(module, budget, children)
        works[module], outcomes[module] = work, outcome
        row = summarize(module, results(work, module), equivalent)
        rows.append(row)
        rate = "-" if row["rate"] is None else f"{row['rate']:.0%}"
        print(
            f"{module}: {len(row['killed'])} killed, {len(row['survived'])} survived, "
            f"{len(row['equivalent'])} equivalent, {len(row['not_run'])} not run, "
            f"kill rate {rate} ({outcome}, {time.monotonic() - started:.0f}s)",
            flush=True,
        )
    # Modules not run this time keep their figures from their last run, if any.
    for module in MODULES:
        work = WORK / Path(module).stem
        if module not in modules and (work / "mutants").exists():
            works[module], outcomes[module] = work, "figures from an earlier run"
            rows.append(summarize(module, results(work, module), equivalent))
    rows.sort(key=lambda r: list(MODULES).index(r["module"]))
    text = report(rows, outcomes, works, equivalent)
    (WORK / "report.md").write_text(text)
    print(f"\nreport: {WORK / 'report.md'}")
    low = [r["module"] for r in rows if r["rate"] is not None and r["rate"] < min_rate]
    if low:
        print(f"kill rate below {min_rate:.0%}: {', '.join(low)}")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
