"""Generate the settings tables of ``docs/configuration.md`` from the code.

``python -m devtools.config_table`` rewrites the text between the markers in
``docs/configuration.md``; ``--check`` only compares and exits 1 when the file is stale
(``tests/unit/test_docs.py`` does the same). Two tables are generated:

- ``settings``: one row per field of :class:`liquidity_core.settings.Settings`: its
  environment variable (from ``settings._ENV_NAMES``, or the ````LIQUIDITY_*```` name in
  the field's docstring entry), its default and the docstring entry itself. A field
  without a docstring entry is an error, not an empty cell.
- ``web``: one row per key of :data:`webapp.DEFAULTS`, which ``create_app`` lets
  ``LIQUIDITY_WEB_<KEY>`` override, with the comment above the key in
  ``webapp/__init__.py``.

Defaults that depend on the checkout are shown relative to ``<repo>`` (the repository
root), so the table is the same on every machine.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "configuration.md"
MARKERS = {
    "settings": ("<!-- settings-table:begin -->", "<!-- settings-table:end -->"),
    "web": ("<!-- web-table:begin -->", "<!-- web-table:end -->"),
}
_ENV_VAR = re.compile(r"``(LIQUIDITY_[A-Z0-9_]+)``")


def _attribute_docs(doc: str) -> dict[str, str]:
    """The numpydoc ``Attributes`` entries of a class docstring: name -> one-line text."""
    entries: dict[str, list[str]] = {}
    current = None
    in_section = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped == "Attributes":
            in_section = True
            continue
        if not in_section or not stripped or set(stripped) == {"-"}:
            continue
        head = re.match(r"^\s{4}(\w+) : ", line)
        if head:
            current = head.group(1)
            entries[current] = []
        elif current is not None:
            entries[current].append(stripped)
    return {name: " ".join(lines) for name, lines in entries.items()}


def _markdown(rst: str) -> str:
    """reStructuredText inline markup as Markdown (``x`` -> `x`, :mod:`~a.b` -> `b`)."""
    text = re.sub(r":\w+:`~([^`]+)`", lambda m: f"`{m.group(1).split('.')[-1]}`", rst)
    text = re.sub(r":\w+:`([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    return text.replace("|", "\\|")


def _meaning(entry: str) -> str:
    """A docstring entry without its environment variable (the table has a column for it)."""
    text = re.sub(r"\s*\(``LIQUIDITY_[A-Z0-9_]+``\)", "", entry)
    text = re.sub(r"``LIQUIDITY_[A-Z0-9_]+``,\s*", "", text)
    return _markdown(text)


def _shown(value) -> str:
    text = str(value).replace(str(REPO), "<repo>")
    return f"`{text}`" if text else "empty"


def settings_rows() -> list[tuple[str, str, str, str]]:
    """(variable, field, default, meaning) for each field of ``Settings``."""
    from liquidity_core import settings as module

    docs = _attribute_docs(module.Settings.__doc__ or "")
    computed = module.load_settings({})
    rows = []
    for f in dataclasses.fields(module.Settings):
        if f.name not in docs:
            raise SystemExit(f"Settings.{f.name} has no entry in the Settings docstring")
        entry = docs[f.name]
        named = module._ENV_NAMES.get(f.name, (None, None))[0]
        found = _ENV_VAR.findall(entry)
        var = named or (found[0] if found else "")
        if not var:
            raise SystemExit(f"Settings.{f.name}: no LIQUIDITY_* variable in its docstring")
        if f.default is not dataclasses.MISSING:
            default = _shown(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = "computed at start-up (see meaning)"
        else:
            default = _shown(getattr(computed, f.name))
        rows.append((f"`{var}`", f"`{f.name}`", default, _meaning(entry)))
    return rows


def web_rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for each key of ``webapp.DEFAULTS``."""
    source = (REPO / "webapp" / "__init__.py").read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    node = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.AnnAssign | ast.Assign)
        and "DEFAULTS" in ast.unparse(n.target if isinstance(n, ast.AnnAssign) else n.targets[0])
    )
    from webapp import DEFAULTS

    rows = []
    for key in node.keys:
        comment = []
        i = key.lineno - 2  # the line above the key, 0-based
        while i >= 0 and lines[i].strip().startswith("#"):
            comment.insert(0, lines[i].strip().lstrip("#").strip())
            i -= 1
        name = ast.literal_eval(key)
        meaning = _markdown(" ".join(comment)) or "Flask's own setting of this name"
        rows.append((f"`LIQUIDITY_WEB_{name}`", f"`{DEFAULTS[name]}`", meaning))
    return rows


def tables() -> dict[str, str]:
    """The generated Markdown of each marked region."""
    settings = ["| variable | field | default | meaning |", "|---|---|---|---|"]
    settings += [f"| {' | '.join(row)} |" for row in settings_rows()]
    web = ["| variable | default | meaning |", "|---|---|---|"]
    web += [f"| {' | '.join(row)} |" for row in web_rows()]
    return {"settings": "\n".join(settings), "web": "\n".join(web)}


def render(text: str) -> str:
    """``text`` (the document) with every marked region replaced by its generated table."""
    for name, table in tables().items():
        begin, end = MARKERS[name]
        if text.count(begin) != 1 or text.count(end) != 1:
            raise SystemExit(f"{DOC.name}: expected one {begin} and one {end}")
        head, rest = text.split(begin)
        _, tail = rest.split(end)
        text = f"{head}{begin}\n{table}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{DOC.relative_to(REPO)} is stale: run python -m devtools.config_table")
            return 1
        return 0
    if wanted != current:
        DOC.write_text(wanted, encoding="utf-8")
        print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
