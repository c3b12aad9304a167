"""The run-scoped teardown stack: everything a run creates is undone when the run ends.

A deployment spans plays (allocate, then workers, then router, then benchmark), so what a
play starts must outlive the play. Every action that creates something pushes its undo
here (think ``contextlib.ExitStack`` or Go's ``defer``). The stack unwinds when the run
ends, fails or is interrupted, in tiers: 0 benchmarks and clients, 1 workers and router,
2 sidecars, 3 the allocation; within a tier, last pushed first. It is persisted in the run
record after every change so ``smlplay down RUN`` can unwind it from another process.

Entries are plain dicts (JSON): ``{"kind": "process", "host", "name", "tier", "grace"}``
or ``{"kind": "command", "host", "cmd", "tier", "label"}``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Entry = dict[str, Any]


class TeardownStack:
    def __init__(self, on_change: Callable[[list[Entry]], None] | None = None, entries: list[Entry] | None = None) -> None:
        self._entries: list[Entry] = list(entries or [])
        self._lock = threading.Lock()
        self._on_change = on_change or (lambda _entries: None)

    def push(self, entry: Entry) -> None:
        with self._lock:
            self._entries.append(dict(entry))
            snapshot = list(self._entries)
        self._on_change(snapshot)

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)

    def discard(self, entry: Entry) -> None:
        with self._lock:
            if entry in self._entries:
                self._entries.remove(entry)
            snapshot = list(self._entries)
        self._on_change(snapshot)

    def tiers(self) -> list[tuple[int, list[Entry]]]:
        """Entries grouped by tier, lowest tier first, newest first within a tier."""
        with self._lock:
            entries = list(self._entries)
        by_tier: dict[int, list[Entry]] = {}
        for entry in reversed(entries):
            by_tier.setdefault(int(entry.get("tier", 1)), []).append(entry)
        return sorted(by_tier.items())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
