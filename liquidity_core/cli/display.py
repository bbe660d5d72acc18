"""The progress display on a terminal: ``rich`` on stderr.

A file being ingested is a bar with its rows, rows/s and ETA; a training stage is a line
with the time the previous stage took, each CV fold a line with its score and time. Only
imported when stderr is a terminal, so other runs never load ``rich``.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from liquidity_core import progress


class TerminalSink(progress.Sink):
    """Live progress on stderr."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self._bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=12),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]:>9,} rows"),
            TextColumn("{task.fields[rate]:>7} rows/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._ids: dict[int, int] = {}
        self._stage: tuple[str, float] | None = None
        self._started = False

    def _start(self) -> None:
        if not self._started:
            self._bars.start()
            self._started = True

    def task_started(self, task: progress.Task) -> None:
        self._start()
        self._ids[id(task)] = self._bars.add_task(task.name, total=task.total, rows=0, rate="-")

    def task_updated(self, task: progress.Task) -> None:
        task_id = self._ids.get(id(task))
        if task_id is None:
            return
        rate = task.rows_per_second
        self._bars.update(
            task_id,
            completed=task.done,
            rows=task.rows,
            rate="-" if rate is None else f"{rate:,.0f}",
        )

    def task_finished(self, task: progress.Task) -> None:
        task_id = self._ids.pop(id(task), None)
        if task_id is None:
            return
        self.task_updated(task)
        if task.total:
            self._bars.update(task_id, completed=task.total)
        self._bars.stop_task(task_id)

    def _end_stage(self) -> None:
        if self._stage is not None:
            name, since = self._stage
            self.console.print(
                f"[green]done[/green] {escape(name)} in {time.monotonic() - since:.1f}s",
                highlight=False,
            )

    def stage(self, name: str) -> None:
        self._end_stage()
        self._stage = (name, time.monotonic())
        self.console.print(f"[bold]{escape(name)}[/bold]", highlight=False)

    def step(self, message: str) -> None:
        elapsed = "" if self._stage is None else f" [{time.monotonic() - self._stage[1]:.1f}s]"
        self.console.print(f"  {escape(message)}{elapsed}", highlight=False)

    def close(self) -> None:
        self._stage = None  # the last stage's end is the command's result (or error)
        if self._started:
            self._bars.stop()
            self._started = False
