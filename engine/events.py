"""Events: what the executor tells the outside world (display, run record).

The executor never prints. It emits events to an :class:`EventSink`; the CLI composes the
rich display (or JSON lines) with the run record's ``events.jsonl``.
"""

from __future__ import annotations

from typing import Any, Protocol


class EventSink(Protocol):
    def emit(self, kind: str, **data: Any) -> None: ...


class Fanout:
    """Send every event to several sinks."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = list(sinks)

    def emit(self, kind: str, **data: Any) -> None:
        for sink in self.sinks:
            sink.emit(kind, **data)


class NullSink:
    def emit(self, kind: str, **data: Any) -> None:
        pass


class ListSink:
    """Collects events (tests, dry-run)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(self, kind: str, **data: Any) -> None:
        self.events.append((kind, data))
