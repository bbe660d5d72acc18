"""The outcome of ingesting one file: :class:`IngestResult`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class IngestResult:
    """The outcome for one file.

    Attributes
    ----------
    path : str
        The file as given.
    status : str
        ``loaded``, ``duplicate``, ``quarantined`` (all recorded in ``ingest_files``) or
        ``refused`` (not read: a symlink, outside the ingest folder, or unreadable).
    file_id : int or None
        The ``ingest_files`` row.
    rows_loaded, rows_existing, rows_rejected : int
        Rows newly stored, rows that were stored already, rows that failed a check.
    error : str or None
        Why the file was quarantined, refused or a duplicate.
    duplicate_of : int or None
        For a duplicate, the ``ingest_files`` row that loaded these bytes.
    moved_to : str or None
        Where the file was moved (``move=True``).
    warning : str or None
        A problem after the file was recorded (it could not be moved, or its reason note
        could not be written); the ledger is right either way.
    """

    path: str
    status: str
    file_id: int | None = None
    file_format: str | None = None
    sha256: str | None = None
    rows_in_file: int = 0
    rows_loaded: int = 0
    rows_existing: int = 0
    rows_rejected: int = 0
    error: str | None = None
    duplicate_of: int | None = None
    moved_to: str | None = None
    extra_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    warning: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the file loaded or was a duplicate."""
        return self.status in ("loaded", "duplicate")

    def summary_line(self) -> str:
        """One human line: status, file, rows loaded/rejected, reason."""
        head = f"{self.status:<11} {self.path}"
        if self.status == "loaded":
            text = (
                f"{head}: {self.rows_loaded} rows loaded, {self.rows_existing} already "
                f"stored, {self.rows_rejected} rejected"
            )
            if self.rows_rejected:
                text += f" (reasons in rejected_rows, file_id={self.file_id})"
        elif self.status == "duplicate":
            text = f"{head}: 0 rows loaded: {self.error}"
        else:
            text = f"{head}: {self.error}"
        if self.moved_to:
            text += f" -> {self.moved_to}"
        if self.warning:
            text += f" (warning: {self.warning})"
        return text

    def as_dict(self) -> dict:
        """A JSON-able dict of every attribute."""
        return asdict(self)
