"""Who may do what: the web app only reads, pickles only from MODEL_DIR after their
sha256 matches, ingest never leaves its folder, SQL is bound, the web DB role reads only.

Complements test_webapp*.py (limits, headers on a few pages), test_registry.py (a
tampered artifact, a relative path outside MODEL_DIR), test_ingest.py (symlinked and
``..`` files) and test_compose.py (Airflow login from the environment, the web role's
privileges in SQL).
"""

from __future__ import annotations

import ast
import hashlib
import http.client
import os
import secrets
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.database import PG_URL
from support.faults import booby_trapped_pickle, database_dump, run_cli, tree_digest
from support.paths import REPO
from support.rows import ROW
from support.webapp import Gunicorn, copy_store, trained_store

from liquidity_core import ingest
from liquidity_core.errors import ModelError
from liquidity_core.registry import champion as registry
from liquidity_core.store import db

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
#: The only non-GET routes: both compute a prediction and store nothing.
ALLOWED_POSTS = {"/", "/api/v1/predict"}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    return trained_store(root, f"sqlite:///{root / 'liquidity.db'}")


@pytest.fixture
def store(template, tmp_path):
    return copy_store(template, tmp_path / "store")


@pytest.fixture
def client(store, make_app):
    return make_app(store).test_client()


def _routes(client) -> list[tuple[str, set[str]]]:
    out = []
    for rule in client.application.url_map.iter_rules():
        path = rule.rule.replace("<symbol>", "BTC").replace("<path:filename>", "style.css")
        out.append((path, set(rule.methods)))
    return out


# --- the web app writes nothing -------------------------------------------------------------


def test_every_write_method_on_every_route_is_refused(client, store):
    db_before = database_dump(store.database_url)
    files_before = tree_digest(store.model_dir)
    tried = 0
    for path, _methods in _routes(client):
        for method in WRITE_METHODS:
            if method == "POST" and path in ALLOWED_POSTS:
                continue
            resp = client.open(path, method=method, json=ROW)
            tried += 1
            assert resp.status_code in (404, 405), (method, path, resp.status_code)
    # Unknown paths too.
    for method in WRITE_METHODS:
        for path in ("/api/v1/models/x", "/api/v1/ingest", "/admin", "/api/v1/models"):
            assert client.open(path, method=method, json=ROW).status_code in (404, 405)
            tried += 1
    print(f"\n{tried} write requests refused")
    assert database_dump(store.database_url) == db_before
    assert tree_digest(store.model_dir) == files_before


def test_a_session_of_api_calls_leaves_database_and_model_dir_byte_identical(client, store):
    db_before = database_dump(store.database_url)
    files_before = tree_digest(store.model_dir)
    symbol = _symbol(store)
    calls = [
        ("GET", "/", None),
        ("GET", "/models", None),
        ("GET", f"/coins/{symbol}", None),
        ("GET", "/coins?symbol=" + symbol, None),
        ("GET", "/api/v1/models", None),
        ("GET", f"/api/v1/coins/{symbol}/prediction", None),
        ("GET", "/readyz", None),
        ("GET", "/api/v1/openapi.json", None),
        ("POST", "/api/v1/predict", ROW),
        ("POST", "/api/v1/predict", [ROW] * 50),
        ("POST", "/api/v1/predict", {"price": -1}),
        ("POST", "/api/v1/predict", [{"coin": "'; DROP TABLE market_snapshots; --"}]),
        ("GET", "/coins/'; DELETE FROM model_versions; --", None),
        ("GET", "/api/v1/coins/%27%20OR%201=1--/prediction", None),
        ("GET", "/coins/..%2F..%2Fetc%2Fpasswd", None),
        ("GET", "/static/../liquidity.db", None),
    ]
    for method, path, body in calls * 3:
        resp = client.open(path, method=method, json=body)
        assert resp.status_code < 500, (method, path, resp.status_code)
    form = client.post("/", data={k: str(v) for k, v in ROW.items()})
    assert form.status_code == 200
    assert database_dump(store.database_url) == db_before
    assert tree_digest(store.model_dir) == files_before


# --- pickles: only from MODEL_DIR, only after the sha256 matches --------------------------------


def _plant(path: Path, marker: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = booby_trapped_pickle(marker)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _set_row(store, version: str, **values) -> None:
    with db.transaction(db.get_engine(store.database_url)) as conn:
        for column, value in values.items():
            conn.execute(
                sa.text(f"UPDATE model_versions SET {column} = :v WHERE version = :ver"),
                {"v": value, "ver": version},
            )


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink", "symlinked-dir"])
def test_a_matching_sha256_outside_model_dir_is_still_refused(store, tmp_path, where, make_app):
    """Even with the database row rewritten to match, a pickle outside MODEL_DIR is refused."""
    marker = tmp_path / f"MARKER-{where}"
    champion = registry.get_champion(db.get_engine(store.database_url))
    outside = tmp_path / "outside" / "model.pkl"
    sha = _plant(outside, marker)
    if where == "absolute":
        _set_row(store, champion["version"], artifact_path=str(outside), artifact_sha256=sha)
    elif where == "dotdot":
        rel = os.path.relpath(outside, store.model_dir)
        assert rel.startswith("..")
        _set_row(store, champion["version"], artifact_path=rel, artifact_sha256=sha)
    elif where == "symlink":
        artifact = store.model_dir / champion["artifact_path"]
        artifact.unlink()
        artifact.symlink_to(outside)
        _set_row(store, champion["version"], artifact_sha256=sha)
    else:
        vdir = (store.model_dir / champion["artifact_path"]).parent
        vdir.rename(vdir.with_name("moved"))
        vdir.symlink_to(outside.parent, target_is_directory=True)
        _set_row(store, champion["version"], artifact_sha256=sha)
    registry.write_current_pointer(
        store.model_dir,
        version=champion["version"],
        sha256=sha,
        artifact_path=champion["artifact_path"],
    )
    with pytest.raises(ModelError, match="outside the model folder"):
        registry.load_verified_model(store)
    client = make_app(store).test_client()
    assert client.post("/api/v1/predict", json=ROW).status_code == 503
    assert not marker.exists(), f"a pickle outside MODEL_DIR was unpickled ({where})"


@pytest.mark.parametrize(
    "artifact_path",
    ["../../evil/model.pkl", "/tmp/evil-model.pkl", "versions/../../evil/model.pkl"],
)
def test_the_pointer_cannot_redirect_loading_outside_model_dir(store, tmp_path, artifact_path):
    """current.json names a path outside MODEL_DIR: the path is never opened; the sha256
    check against the database refuses an evil pointer, a correct one loads the real file."""
    marker = tmp_path / "MARKER"
    evil = (
        (store.model_dir / artifact_path).resolve()
        if not artifact_path.startswith("/")
        else Path(artifact_path)
    )
    evil_sha = _plant(evil, marker)
    try:
        champion = registry.get_champion(db.get_engine(store.database_url))
        registry.write_current_pointer(
            store.model_dir,
            version=champion["version"],
            sha256=evil_sha,
            artifact_path=artifact_path,
        )
        with pytest.raises(ModelError, match="sha256"):
            registry.load_verified_model(store)
        registry.write_current_pointer(
            store.model_dir,
            version=champion["version"],
            sha256=champion["artifact_sha256"],
            artifact_path=artifact_path,
        )
        loaded = registry.load_verified_model(store)
        assert loaded.sha256 == champion["artifact_sha256"]
        assert not marker.exists()
    finally:
        evil.unlink(missing_ok=True)


def test_an_evil_pointer_with_an_evil_artifact_inside_model_dir_is_refused(store, tmp_path):
    """Write access to MODEL_DIR alone is not enough: the database row decides."""
    marker = tmp_path / "MARKER"
    champion = registry.get_champion(db.get_engine(store.database_url))
    sha = _plant(store.model_dir / champion["artifact_path"], marker)
    registry.write_current_pointer(
        store.model_dir,
        version=champion["version"],
        sha256=sha,
        artifact_path=champion["artifact_path"],
    )
    for call in (
        lambda: registry.load_verified_model(store),
        lambda: registry.load_verified_model(store, champion["version"]),
    ):
        with pytest.raises(ModelError, match="sha256"):
            call()
    assert not marker.exists()


# --- ingest stays in its folder ------------------------------------------------------------------


def test_symlinked_folder_and_dotdot_inside_the_ingest_folder_are_refused(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.csv").write_text(
        "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\nA,A,1,0,0,0,1,1,2024-01-01\n"
    )
    folder = store.ingest_dir
    (folder / "sub").mkdir()
    (folder / "linkdir").symlink_to(outside, target_is_directory=True)
    up = os.path.relpath(outside / "x.csv", folder)  # ../../outside/x.csv
    paths = [folder / "linkdir" / "x.csv", folder / "sub" / ".." / up]
    results = ingest.ingest_paths(paths, settings=store, move=True)
    assert [r.status for r in results] == ["refused", "refused"], [r.as_dict() for r in results]
    assert (outside / "x.csv").exists() and not (outside / "processed").exists()
    # The DAG lists only regular files directly in the folder.
    assert ingest.list_ready_files(store) == []


@pytest.mark.parametrize("sub", ["processed", "quarantine"])
def test_a_symlinked_processed_or_quarantine_folder_is_not_followed(store, tmp_path, sub):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store.ingest_dir / sub).symlink_to(elsewhere, target_is_directory=True)
    drop = store.ingest_dir / "drop.csv"
    if sub == "processed":
        drop.write_text(
            "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\nA,A,1,0,0,0,1,1,2024-01-01\n"
        )
    else:
        drop.write_text("not,a,known,header\n1,2,3,4\n")
    ingest.ingest_one(drop, store)
    assert list(elsewhere.iterdir()) == [], "a file was moved out of the ingest folder"


# --- headers and limits over real HTTP -----------------------------------------


@pytest.fixture(scope="module")
def server(template, tmp_path_factory):
    with Gunicorn(template, tmp_path_factory.mktemp("sec") / "gunicorn.log") as g:
        yield g


def _raw(server, method: str, path: str, *, headers=None, body=None, chunks=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        if chunks is not None:
            conn.putrequest(method, path)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            try:
                for chunk in chunks:
                    conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                conn.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer and close before the body ends
        else:
            conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_security_headers_on_every_page_and_error(server, template):
    symbol = _symbol(template)
    pages = [
        "/",
        "/models",
        f"/coins/{symbol}",
        "/coins/NO-SUCH-COIN",
        "/report",
        "/no/such/page",
        "/api/v1/models",
        "/api/v1/nope",
        "/healthz",
        "/readyz",
        "/static/style.css",
        "/api/v1/openapi.json",
    ]
    for path in pages:
        status, headers, _ = _raw(server, "GET", path)
        h = {k.lower(): v for k, v in headers.items()}
        assert "frame-ancestors 'none'" in h.get("content-security-policy", ""), path
        assert "default-src 'none'" in h["content-security-policy"], path
        assert h.get("x-content-type-options") == "nosniff", path
        assert h.get("x-frame-options") == "DENY", path
        assert h.get("referrer-policy") == "no-referrer", path
    status, headers, _ = _raw(
        server,
        "POST",
        "/",
        body=b"price=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", "")


def test_a_chunked_body_over_the_limit_is_refused(server):
    """No Content-Length: the limit must still hold while the body streams in."""
    chunk = b" " * 65536
    status, _, body = _raw(
        server,
        "POST",
        "/api/v1/predict",
        headers={"Content-Type": "application/json"},
        chunks=[chunk] * 64,
    )  # 4 MiB > the 2 MiB limit
    # Refused either as too large, or (what Werkzeug does with a chunked stream) cut at the
    # limit: the JSON error says it stopped reading at byte 2 MiB + 1.
    assert status == 413 or (status == 400 and b"column 2097153" in body), (status, body[:300])


def test_a_huge_form_is_refused(server):
    body = b"price=" + b"1" * (3 * 1024 * 1024)
    status, _, _ = _raw(
        server,
        "POST",
        "/",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 413
    many = "&".join(f"f{i}=1" for i in range(5000)).encode()
    status, _, _ = _raw(
        server,
        "POST",
        "/",
        body=many,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert 400 <= status < 500  # refused (422: the known fields are missing)


# --- SQL uses bound parameters -----------------------------------------------


def _sql_calls_with_formatted_text(path: Path, root: Path = REPO) -> list[str]:
    """Calls of execute/exec_driver_sql/text whose SQL is built with values at run time."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name not in ("execute", "exec_driver_sql", "text", "executemany", "copy_expert"):
            continue
        arg = node.args[0]
        formatted = (
            (
                isinstance(arg, ast.JoinedStr)
                and any(isinstance(v, ast.FormattedValue) for v in arg.values)
            )
            or (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod | ast.Add))
            or (isinstance(arg, ast.Call) and getattr(arg.func, "attr", "") == "format")
        )
        if formatted:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)[:120]}")
    return found


def test_sql_is_never_built_from_values():
    files = [
        p
        for folder in ("liquidity_core", "webapp", "plugins", "dags")
        for p in sorted((REPO / folder).rglob("*.py"))
    ]
    assert len(files) > 10
    offenders = [hit for f in files for hit in _sql_calls_with_formatted_text(f)]
    assert offenders == [], "\n".join(offenders)
    # The SQL files take values only as :name parameters (no string interpolation markers).
    for sql in sorted((REPO / "sql").rglob("*.sql")):
        text = sql.read_text()
        assert "%s" not in text and "{}" not in text and "format(" not in text.lower(), sql


def test_the_checker_catches_formatted_sql(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text(
        'def f(conn, v):\n    conn.execute(f"SELECT * FROM t WHERE x = {v}")\n'
        "    conn.exec_driver_sql('DELETE FROM t WHERE id = %s' % v)\n"
    )
    assert len(_sql_calls_with_formatted_text(bad, root=tmp_path)) == 2


# --- the web app's database role reads only -------------------------------------------------------


@pytest.fixture
def roles(tmp_path):
    """deploy/postgres/init-databases.sh run against the local server under unique names."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    import psycopg2

    url = sa.engine.make_url(PG_URL)
    tag = f"sec{secrets.token_hex(4)}"
    names = {
        "AIRFLOW_DB_NAME": f"{tag}_airflow",
        "AIRFLOW_DB_USER": f"{tag}_airflow",
        "LIQUIDITY_DB_NAME": f"{tag}_liquidity",
        "LIQUIDITY_DB_USER": f"{tag}_liquidity",
        "LIQUIDITY_WEB_DB_USER": f"{tag}_web",
    }
    passwords = {
        "AIRFLOW_DB_PASSWORD": secrets.token_urlsafe(12),
        "LIQUIDITY_DB_PASSWORD": secrets.token_urlsafe(12),
        "LIQUIDITY_WEB_DB_PASSWORD": secrets.token_urlsafe(12),
    }
    env = {
        **os.environ,
        **names,
        **passwords,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_DB": "postgres",
    }
    proc = subprocess.run(
        ["bash", str(REPO / "deploy" / "postgres" / "init-databases.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr

    def as_user(user, password):
        return (
            f"postgresql+psycopg2://{names[user]}:{passwords[password]}@"
            f"{url.host or '127.0.0.1'}:{url.port or 5432}/{names['LIQUIDITY_DB_NAME']}"
        )

    try:
        yield {
            "owner": as_user("LIQUIDITY_DB_USER", "LIQUIDITY_DB_PASSWORD"),
            "web": as_user("LIQUIDITY_WEB_DB_USER", "LIQUIDITY_WEB_DB_PASSWORD"),
        }
    finally:
        db.get_engine.cache_clear()
        admin = psycopg2.connect(
            host=url.host, port=url.port or 5432, user=url.username or "postgres", dbname="postgres"
        )
        admin.autocommit = True
        with admin.cursor() as cur:
            for name in (names["AIRFLOW_DB_NAME"], names["LIQUIDITY_DB_NAME"]):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in (
                names["LIQUIDITY_WEB_DB_USER"],
                names["LIQUIDITY_DB_USER"],
                names["AIRFLOW_DB_USER"],
            ):
                cur.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def test_the_web_app_reads_as_the_read_only_role_and_cannot_write(roles, tmp_path, make_app):
    from support.webapp import settings_for

    owner = trained_store(tmp_path / "owner", roles["owner"])  # migrations, ingest, training
    web = settings_for(tmp_path / "owner", roles["web"])  # same folders, the web role's URL
    before = database_dump(owner.database_url)
    client = make_app(web).test_client()
    symbol = _symbol(owner)
    for path in (
        "/api/v1/models",
        f"/api/v1/coins/{symbol}/prediction",
        "/models",
        f"/coins/{symbol}",
        "/readyz",
    ):
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True)[:500])
    assert client.post("/api/v1/predict", json=[ROW] * 3).status_code == 200
    # The same connection pool cannot write, whatever the statement.
    engine = db.get_engine(web.database_url)
    for statement in (
        "DELETE FROM market_snapshots",
        "UPDATE model_versions SET status = 'x'",
        "INSERT INTO liquidity_alembic_version VALUES ('999')",
        "CREATE TABLE evil (x int)",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="permission denied|read-only"):
            with engine.begin() as conn:
                conn.execute(sa.text("SET TRANSACTION READ WRITE"))
                conn.execute(sa.text(statement))
    # The write paths fail too: an ingest as the web role changes nothing.
    drop = tmp_path / "drop.csv"
    drop.write_text(
        "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\nNewcoin,NEW,1,0,0,0,1,1,2030-01-01\n"
    )
    proc = run_cli(web, "ingest", str(drop))
    assert proc.returncode != 0
    assert database_dump(owner.database_url) == before
    engine.dispose()
    db.get_engine(owner.database_url).dispose()


def _symbol(settings) -> str:
    with db.transaction(db.get_engine(settings.database_url)) as conn:
        return conn.execute(sa.text("SELECT symbol FROM market_snapshots LIMIT 1")).scalar_one()
