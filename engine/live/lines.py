"""The compact view's lines as plain strings (the terminal view only adds colour).

``prefill workers   node1 ✓ 12.3s`` for a finished play; while it runs, a spinner frame,
the current task and, per waiting host, a countdown with the last probe result.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.live.state import HostRow, PlayView, RunView, Wait
from engine.units import format_duration

NAME_WIDTH = 26  # plays are padded to this, so host columns mostly line up
MAX_HOSTS = 6  # above this a play line counts hosts instead of naming them
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


@dataclass(frozen=True)
class Symbols:
    ok: str
    failed: str
    skipped: str
    running: str

    @classmethod
    def for_encoding(cls, encoding: str | None) -> Symbols:
        """Unicode marks where the stream can encode them, words elsewhere (LANG=C logs)."""
        try:
            "✓✗⠋".encode(encoding or "utf-8")  # no encoding: an in-memory stream
        except (UnicodeEncodeError, LookupError):
            return cls("ok", "FAILED", "skipped", "..")
        return cls("✓", "✗", "-", "⠋")


UNICODE = Symbols.for_encoding("utf-8")


def spinner_frame(now: float) -> str:
    return SPINNER[int(now * 12.5) % len(SPINNER)]


def host_mark(row: HostRow, symbols: Symbols, frame: str) -> str:
    if row.state in ("failed", "unreachable"):
        return symbols.failed
    if row.busy:
        return frame
    return symbols.ok if row.results else symbols.skipped


def host_segment(row: HostRow, now: float, symbols: Symbols, frame: str) -> str:
    mark = host_mark(row, symbols, frame)
    if not row.busy and not row.results:
        return f"{row.name} {mark}"  # nothing ran yet, or only skipped tasks: no time to show
    return f"{row.name} {mark} {row.elapsed(now):.1f}s"


def hosts_text(play: PlayView, now: float, symbols: Symbols, frame: str) -> str:
    rows = list(play.hosts.values())
    if not rows:
        return "(no hosts)"
    if len(rows) <= MAX_HOSTS:
        return "  ".join(host_segment(r, now, symbols, frame) for r in rows)
    counts: dict[str, list[str]] = {}
    for r in rows:
        counts.setdefault(host_mark(r, symbols, frame), []).append(r.name)
    slowest = max(r.elapsed(now) for r in rows)
    parts = [f"{len(rows)} hosts:"] + [f"{len(names)} {mark}" for mark, names in counts.items()]
    failed = counts.get(symbols.failed, [])
    if failed:
        parts.append("(" + ", ".join(failed[:5]) + (", ..." if len(failed) > 5 else "") + ")")
    return " ".join(parts) + f"  max {slowest:.1f}s"


def play_line(play: PlayView, now: float, symbols: Symbols = UNICODE, frame: str | None = None) -> str:
    """A play: its mark, its name, then each host's mark and time."""
    frame = frame or symbols.running
    mark = frame if play.ended is None else (symbols.failed if play.failed else symbols.ok)
    return f"{mark} {play.name:<{NAME_WIDTH}} {hosts_text(play, now, symbols, frame)}"


def wait_text(wait: Wait, now: float) -> str:
    """``health 12.0s / 10m00s (9m48s left): Connection refused``."""
    waited = now - wait.started
    label = "health" if wait.what == "health" else "waiting"
    head = f"{label} {format_duration(waited)}"
    remaining = wait.remaining(now)
    if wait.timeout is not None and remaining is not None:
        head += f" / {format_duration(wait.timeout)} ({format_duration(remaining)} left)"
    return f"{head}: {wait.last}" if wait.last else head


def live_lines(view: RunView, now: float, symbols: Symbols = UNICODE) -> list[str]:
    """The region under the printed lines: the running play (or the teardown) and, per
    host that waits, its countdown."""
    frame = spinner_frame(now)
    if view.teardown is not None:
        td = view.teardown
        return [f"{frame} teardown {td.done}/{td.total}" + (f"  {td.current}" if td.current else "")]
    play = view.play
    if play is None or not play.name:
        return []
    lines = [play_line(play, now, symbols, frame) + (f"  · {play.task}" if play.task else "")]
    waiting = [r for r in play.hosts.values() if r.busy and r.wait is not None]
    for row in waiting[:MAX_HOSTS]:
        assert row.wait is not None
        lines.append(f"    {row.name}: {row.task}: {wait_text(row.wait, now)}")
    if len(waiting) > MAX_HOSTS:
        lines.append(f"    ... and {len(waiting) - MAX_HOSTS} more hosts waiting")
    return lines
