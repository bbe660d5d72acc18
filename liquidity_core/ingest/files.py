"""Moving a file after ingestion: to ``processed/`` or ``quarantine/`` beside it (with a
``<name>.reason.txt`` for a quarantined one), never overwriting an existing file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from liquidity_core.errors import InputError

if TYPE_CHECKING:
    from liquidity_core.ingest.result import IngestResult

log = logging.getLogger("liquidity_core.ingest")


def move_after(path: Path, result: IngestResult) -> None:
    if result.status not in ("loaded", "duplicate", "quarantined"):
        return
    folder = path.parent / ("quarantine" if result.status == "quarantined" else "processed")
    try:
        target = _move_no_clobber(path, folder)
    except FileNotFoundError:
        log.info("%s was already moved (by a concurrent run)", path)
        return
    except OSError as exc:  # e.g. no room for the folder: the file stays, the ledger is right
        result.warning = f"could not move the file to {folder}: {exc.strerror or exc}"
        log.warning("%s: %s", path, result.warning)
        return
    result.moved_to = str(target)
    if result.status == "quarantined":
        note = f"{result.error}\n\nfile: {path.name}\n"
        if result.sha256 is not None:
            note += f"sha256: {result.sha256}\ningest_files.id: {result.file_id}\n"
        try:
            _write_no_clobber(target.with_name(target.name + ".reason.txt"), note)
        except OSError as exc:
            result.warning = (
                f"could not write the reason note ({exc.strerror or exc}); "
                f"the reason is in ingest_files.id={result.file_id}"
            )
            log.warning("%s: %s", path, result.warning)


def _candidates(folder: Path, name: str):
    yield folder / name
    stem, suffix = os.path.splitext(name)
    for k in range(1, 10_000):
        yield folder / f"{stem}.{k}{suffix}"


def _move_no_clobber(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` under a name that does not exist there yet.

    ``folder`` must be a real folder beside the file: a symlink (which could lead out of
    the ingest folder) is refused.
    """
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise NotADirectoryError(
            0,
            f"{folder.name}/ is a symbolic link or not a folder; refusing to move files through it",
        )
    folder.mkdir(exist_ok=True)
    for target in _candidates(folder, path.name):
        try:
            os.link(path, target)  # fails if target exists: never overwrites
        except FileExistsError:
            continue
        except FileNotFoundError:
            raise
        except OSError:  # no hard links here: fall back to a checked rename
            if target.exists():
                continue
            os.rename(path, target)
            return target
        try:
            os.unlink(path)
        except OSError:
            os.unlink(target)  # never leave the file in two places
            raise
        return target
    raise InputError(f"cannot find a free name for {path.name} in {folder}")


def _write_no_clobber(path: Path, text: str) -> Path:
    for target in _candidates(path.parent, path.name):
        try:
            fh = open(target, "x", encoding="utf-8")  # noqa: SIM115 - closed below
        except FileExistsError:
            continue
        try:
            with fh:
                fh.write(text)
        except OSError:
            target.unlink(missing_ok=True)  # never leave an empty or partial note
            raise
        return target
    raise InputError(f"cannot find a free name for {path.name} in {path.parent}")
