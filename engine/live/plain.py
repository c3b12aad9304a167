"""The compact view for logs and pipes (CI, ``| tee``): the lines the terminal view keeps,
as plain text without control codes, and every ``progress_every`` seconds a line per host
that is still waiting, so a long model load shows it is alive."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from engine.live.lines import Symbols, play_line, wait_text
from engine.live.state import Note, RunView


class PlainDisplay:
    """An :class:`~engine.events.EventSink` writing the compact view as plain lines."""

    def __init__(self, stream: TextIO | None = None, *, clock: Callable[[], float] = time.monotonic, progress_every: float = 30.0) -> None:
        self.stream = stream or sys.stdout
        self.symbols = Symbols.for_encoding(getattr(self.stream, "encoding", None))
        self.clock = clock
        self.view = RunView(clock=clock)
        self.progress_every = progress_every
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def emit(self, kind: str, **data: Any) -> None:
        with self._lock:
            notes = self.view.apply(kind, data)
            for note in notes:
                self._write(self.note_text(note))
            if kind == "health_start":  # a new wait: its first line comes progress_every later
                self._last[str(data.get("host", ""))] = self.clock()
            elif kind == "health_progress":
                self._progress(str(data.get("host", "")))

    def note_text(self, note: Note) -> str:
        if note.kind == "play" and note.play is not None:
            return play_line(note.play, self.clock(), self.symbols)
        return note.text

    def _progress(self, host: str) -> None:
        play = self.view.play
        row = play.hosts.get(host) if play is not None else None
        if row is None or row.wait is None:
            return
        now = self.clock()
        first = self._last.setdefault(host, now)  # the first line waits progress_every too
        if now - first >= self.progress_every:
            self._last[host] = now
            self._write(f"  [{host}] {row.task}: {wait_text(row.wait, now)}")

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
