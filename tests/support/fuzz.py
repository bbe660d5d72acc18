"""``make fuzz``: seeded fuzzing of every input surface at a chosen budget.

Targets (each gets ``budget`` generated inputs from :mod:`fuzz_inputs`, seeded by
``seed``):

- ``csv``: files through :func:`liquidity_core.ingest.ingest_paths` (what ``liquidity
  ingest`` runs), on a SQLite store that accumulates every case;
- ``predict``: JSON bodies through ``POST /api/v1/predict`` (Flask test client);
- ``form``: the form on ``/`` (a quarter of the budget);
- ``get``: symbols, paths and query strings through the GET routes (test client);
- ``http``: a tenth of the predict and get cases again over real HTTP (gunicorn).

Each run checks: no exception escapes (a crash), no answer is a 5xx, an error answer from
``/api/`` has the JSON error shape, and nothing stored changed by a rejected input: a
quarantined or duplicate file stores no row, a loaded one exactly ``rows_loaded`` under its
own id, and the rows of earlier files never change (hashed every ``CHECK_EVERY`` cases);
the web targets leave the tables and the model folder as they were.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa

import support.fuzz_inputs as gen
from liquidity_core.ingest import ingest_paths
from liquidity_core.store import db
from support.webapp import model_dir_state, table_counts

CHECK_EVERY = 250


@dataclass
class Outcome:
    """What one target did: cases, answers by kind, failures (first few kept in full)."""

    target: str
    cases: int = 0
    seconds: float = 0.0
    answers: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0

    def fail(self, case: int, what: str, data) -> None:
        self.failure_count += 1
        if len(self.failures) < 5:
            self.failures.append(f"{self.target} case {case}: {what}; input {data!r:.400}")

    def line(self) -> str:
        rate = self.cases / self.seconds if self.seconds else 0.0
        top = ", ".join(f"{k} {v}" for k, v in self.answers.most_common(8))
        return (
            f"{self.target}: {self.cases} inputs in {self.seconds:.1f} s ({rate:.0f}/s), "
            f"{self.failure_count} failures; {top}"
        )


def _rng(seed: int, target: str) -> random.Random:
    return random.Random(f"{seed}:{target}")


# --- CSV through ingest --------------------------------------------------------------------


def _rows_digest(engine, up_to_file_id: int) -> str:
    """A hash of every stored row that came from files up to ``up_to_file_id``."""
    digest = hashlib.sha256()
    query = sa.text(
        "SELECT coin_id, snapshot_ts, coin_name, symbol, price, change_1h, change_24h, "
        "change_7d, volume_24h, market_cap, extras, source_file_id FROM market_snapshots "
        "WHERE source_file_id <= :f ORDER BY coin_id, snapshot_ts"
    )
    with db.transaction(engine) as conn:
        for row in conn.execute(query, {"f": up_to_file_id}):
            digest.update(repr(tuple(row)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _scalar(engine, sql: str, **params) -> int:
    with db.transaction(engine) as conn:
        return conn.execute(sa.text(sql), params).scalar_one() or 0


def fuzz_csv(settings, *, seed: int, budget: int) -> Outcome:
    """``budget`` generated files through ``ingest_paths``, one store for all."""
    out = Outcome("csv")
    rng = _rng(seed, "csv")
    engine = db.get_engine(settings.database_url)
    db.upgrade(engine)
    checkpoint = (0, _rows_digest(engine, 0))
    t0 = time.perf_counter()
    for case in range(budget):
        data = gen.csv_file(rng)
        path = settings.ingest_dir / f"fuzz_{seed}_{case}.csv"
        path.write_bytes(data)
        total_before = _scalar(engine, "SELECT COUNT(*) FROM market_snapshots")
        try:
            (result,) = ingest_paths([path], settings=settings)
        except Exception as exc:  # noqa: BLE001 - a crash is what the fuzzer looks for
            out.fail(case, f"crash {type(exc).__name__}: {exc}"[:300], data)
            continue
        finally:
            out.cases += 1
        out.answers[result.status] += 1
        problem = _ingest_problem(engine, result, total_before)
        if problem:
            out.fail(case, problem, data)
        if case % CHECK_EVERY == CHECK_EVERY - 1 or case == budget - 1:
            old_id, old_digest = checkpoint
            if _rows_digest(engine, old_id) != old_digest:
                out.fail(case, f"rows of files up to id {old_id} changed", b"")
            newest = _scalar(engine, "SELECT MAX(id) FROM ingest_files")
            checkpoint = (newest, _rows_digest(engine, newest))
        path.unlink(missing_ok=True)
    out.seconds = time.perf_counter() - t0
    return out


def _ingest_problem(engine, result, total_before: int) -> str | None:
    if result.status not in ("loaded", "duplicate", "quarantined"):
        return f"unexpected status {result.status}"
    if result.status != "loaded" and not result.error:
        return f"{result.status} without a reason"
    total = _scalar(engine, "SELECT COUNT(*) FROM market_snapshots")
    added = total - total_before
    if result.file_id is None:
        return None if added == 0 else f"{added} rows stored for a file with no ledger row"
    own = _scalar(
        engine, "SELECT COUNT(*) FROM market_snapshots WHERE source_file_id = :f", f=result.file_id
    )
    rejected = _scalar(
        engine, "SELECT COUNT(*) FROM rejected_rows WHERE file_id = :f", f=result.file_id
    )
    if result.status == "loaded":
        if not (own == added == result.rows_loaded and rejected == result.rows_rejected):
            return f"loaded: {own} own rows, {added} added, {rejected} rejected rows for {result}"
        accounted = result.rows_loaded + result.rows_existing + result.rows_rejected
        if accounted != result.rows_in_file:
            return f"rows not accounted for: {result}"
    elif added or own:
        return f"{result.status} file changed the store: {added} rows added"
    return None


# --- the web app ------------------------------------------------------------------------------


def _check_answer(out: Outcome, case: int, path: str, status: int, body: bytes, ctype: str, data):
    out.answers[status] += 1
    if status >= 500:
        out.fail(case, f"{path} answered {status}: {body[:300]!r}", data)
    elif b"Traceback" in body:
        out.fail(case, f"{path} answered with a traceback", data)
    elif status >= 400 and path.startswith("/api/"):
        if not ctype.startswith("application/json") or b'"error"' not in body:
            out.fail(case, f"{path} {status} is not the JSON error shape", data)


def fuzz_web(app, settings, *, seed: int, budget: int) -> list[Outcome]:
    """JSON bodies, form posts and GET paths through the Flask test client."""
    client = app.test_client()
    before = (table_counts(settings), model_dir_state(settings))
    outcomes = []
    for target, count in (("predict", budget), ("form", max(1, budget // 4)), ("get", budget)):
        out = Outcome(target)
        rng = _rng(seed, target)
        t0 = time.perf_counter()
        for case in range(count):
            method, ctype, body = "POST", "application/x-www-form-urlencoded", None
            if target == "predict":
                body, ctype = gen.json_body(rng)
                path = "/api/v1/predict"
            elif target == "form":
                path, body = "/", gen.form_fields(rng)
            else:
                method, path = "GET", gen.get_path(rng)
            data = body if body is not None else path
            out.cases += 1
            try:
                resp = client.open(path, method=method, data=body, content_type=ctype)
            except Exception as exc:  # noqa: BLE001
                out.fail(case, f"crash {type(exc).__name__}: {exc}"[:300], data)
                continue
            _check_answer(
                out, case, path, resp.status_code, resp.get_data(), resp.content_type or "", data
            )
            if (
                case % CHECK_EVERY == CHECK_EVERY - 1
                and (
                    table_counts(settings),
                    model_dir_state(settings),
                )
                != before
            ):
                out.fail(case, "the store or the model folder changed", data)
        out.seconds = time.perf_counter() - t0
        outcomes.append(out)
    if (table_counts(settings), model_dir_state(settings)) != before:
        outcomes[-1].fail(-1, "the store or the model folder changed", b"")
    return outcomes


def fuzz_http(base_url: str, settings, *, seed: int, budget: int) -> Outcome:
    """``budget`` predict bodies and GET paths over real HTTP."""
    host, port = base_url.split("//", 1)[1].split(":")
    out = Outcome("http")
    rng = _rng(seed, "http")
    before = (table_counts(settings), model_dir_state(settings))
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    t0 = time.perf_counter()
    for case in range(budget):
        if case % 2 == 0:
            body, ctype = gen.json_body(rng)
            method, path, headers = "POST", "/api/v1/predict", {"Content-Type": ctype}
        else:
            method, path, body, headers = "GET", gen.get_path(rng), None, {}
        out.cases += 1
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            status, ctype_got = resp.status, resp.getheader("Content-Type", "")
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            out.fail(case, f"connection failed {type(exc).__name__}: {exc}", (path, body))
            continue
        _check_answer(out, case, path, status, raw, ctype_got, (path, body))
    conn.close()
    out.seconds = time.perf_counter() - t0
    if (table_counts(settings), model_dir_state(settings)) != before:
        out.fail(-1, "the store or the model folder changed", b"")
    return out


def report(outcomes: list[Outcome], *, seed: int, budget: int) -> str:
    """The figures of a run, one line per target."""
    lines = [f"fuzz seed {seed}, budget {budget} per target"]
    lines += [o.line() for o in outcomes]
    for o in outcomes:
        lines += o.failures
    return "\n".join(lines)
