"""The live view on a terminal: finished plays, outputs and problems print and stay; a
rich ``Live`` region under them shows the running play with a spinner, per-host progress
and health countdowns. Imported only when a run draws on a terminal (rich is heavy)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from engine.live.lines import Symbols, live_lines, play_line
from engine.live.state import Note, RunView

_STYLE = {
    "header": "bold",
    "output": "cyan",
    "failure": "red",
    "warning": "magenta",
    "info": "cyan",
    "recap": "",
    "summary": "bold",
}


class LiveDisplay:
    """An :class:`~engine.events.EventSink` drawing the compact live view."""

    def __init__(self, console: Console | None = None, *, clock: Callable[[], float] = time.monotonic, refresh_per_second: float = 8) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.symbols = Symbols.for_encoding(self.console.encoding)
        self.clock = clock
        self.view = RunView(clock=clock)
        # Two locks, never nested: rich's refresh thread holds its own lock while it asks
        # for the region (state lock), and printing takes rich's lock (print lock only).
        self._state = threading.Lock()
        self._print = threading.Lock()
        self._refresh = refresh_per_second
        self._live: Live | None = None

    def emit(self, kind: str, **data: Any) -> None:
        with self._state:
            notes = self.view.apply(kind, data)
        with self._print:
            if self._live is None and kind == "run_start":
                self._start()
            for note in notes:
                self.console.print(self.note_text(note))
            if kind == "recap":
                self._stop()

    def note_text(self, note: Note) -> Text:
        if note.kind == "play" and note.play is not None:
            line = play_line(note.play, self.clock(), self.symbols)
            return Text(line, style="red" if note.play.failed else "green")
        return Text(note.text, style=_STYLE.get(note.kind, ""))

    def region(self) -> RenderableType:
        with self._state:
            lines = live_lines(self.view, self.clock(), self.symbols)
        # Lines stop short of the last columns: a full-width line leaves the cursor in the
        # pending-wrap column, and the terminal's echo of ^C (or any key) then adds a row
        # rich does not know about, leaving a stale line behind.
        width = max(10, self.console.width - 4)
        texts = []
        for i, line in enumerate(lines):
            text = Text(line, no_wrap=True, style="dim" if i else "")
            text.truncate(width, overflow="ellipsis")
            texts.append(text)
        return Group(*texts)

    def _start(self) -> None:
        self._live = Live(
            console=self.console,
            get_renderable=self.region,
            refresh_per_second=self._refresh,
            transient=True,  # the region goes; what was printed above it stays
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._live.start()

    def close(self) -> None:
        """Stop drawing (idempotent): the recap did, or the run ended without one."""
        with self._print:
            self._stop()

    def _stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()
