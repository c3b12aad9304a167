"""Terminal output: Ansible-style lines users grep for, a recap table, error panels.

Two sinks: :class:`TextDisplay` (rich, for people) and :class:`JsonDisplay` (one JSON
event per line, for machines). :func:`render_error` prints a :class:`SmlplayError` once,
with ``file:line:col``, a code frame with a caret, and the hint.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from engine.errors import SmlplayError
from engine.executor.context import STATS
from engine.secrets import mask_text

_STATUS_STYLE = {"ok": "green", "changed": "yellow", "failed": "red", "skipped": "cyan", "unreachable": "red"}


class TextDisplay:
    def __init__(self, console: Console | None = None, *, verbosity: int = 0) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.verbosity = verbosity
        self._lock = threading.RLock()
        self._last_progress: dict[str, float] = {}

    def emit(self, kind: str, **d: Any) -> None:
        with self._lock:
            method = getattr(self, f"_on_{kind}", None)
            if method is not None:
                method(**d)

    def _rule(self, text: str) -> None:
        self.console.print(Text(f"\n{text} " + "*" * max(3, 78 - len(text)), style="bold"))

    def _on_run_start(self, run_id: str, run_dir: str, playbook: str) -> None:
        self.console.print(f"run [bold]{run_id}[/] ({playbook}) -> {run_dir}")

    def _on_play_start(self, play: str, hosts: list[str], pos: str) -> None:
        self._rule(f"PLAY [{play}]")

    def _on_task_start(self, task: str, handler: bool = False, **_: Any) -> None:
        self._rule(f"{'RUNNING HANDLER' if handler else 'TASK'} [{task}]")

    def _on_task_result(self, task: str, host: str, status: str, ignored: bool, result: dict[str, Any], handler: bool = False, action: str | None = None) -> None:
        style = _STATUS_STYLE.get(status, "white")
        if status == "failed":
            msg = result.get("msg") or "failed"
            line = Text(f"fatal: [{host}]: FAILED! => ", style=style)
            line.append(str(msg))
            self.console.print(line)
            for key in ("stdout", "stderr"):
                if result.get(key):
                    self.console.print(Text(f"  {key}:\n" + _indent(str(result[key])[-4000:]), style="dim"))
            if ignored:
                self.console.print(Text("...ignoring", style="cyan"))
            return
        if status == "unreachable":
            self.console.print(Text(f"fatal: [{host}]: UNREACHABLE! => {result.get('msg')}", style=style))
            return
        label = {"ok": "ok", "changed": "changed", "skipped": "skipping"}.get(status, status)
        extra = ""
        if result.get("health", {}).get("healthy"):
            extra = f" (healthy after {result['health'].get('elapsed', 0):.1f}s)"
        self.console.print(Text(f"{label}: [{host}]{extra}", style=style))
        if action == "debug" and status != "skipped" and not self.verbosity:
            self.console.print(Text(_indent(str(result.get("msg", ""))), style="cyan"))  # as Ansible does
        if self.verbosity and status != "skipped":
            for key in ("msg", "stdout", "stderr"):
                if result.get(key):
                    self.console.print(Text(_indent(f"{key}: {result[key]}"), style="dim"))

    def _on_item_result(self, task: str, host: str, item: Any, status: str) -> None:
        if self.verbosity:
            self.console.print(Text(f"  {status}: [{host}] => (item={item})", style=_STATUS_STYLE.get(status, "")))

    def _on_retry(self, task: str, host: str, retries_left: int) -> None:
        self.console.print(Text(f"FAILED - RETRYING: [{host}]: {task} ({retries_left} retries left).", style="yellow"))

    def _on_health_start(self, task: str, host: str, probes: list[str]) -> None:
        if self.verbosity:
            self.console.print(Text(f"  [{host}] health: " + "; ".join(probes), style="dim"))

    def _on_health_progress(self, task: str, host: str, message: str) -> None:
        import time

        now = time.monotonic()
        if now - self._last_progress.get(host, 0) >= 5:
            self._last_progress[host] = now
            self.console.print(Text(f"  [{host}] {message}", style="dim"))

    def _on_warning(self, message: str) -> None:
        self.console.print(Text(f"[WARNING]: {message}", style="magenta"))

    def _on_interrupt(self, signal: str, message: str) -> None:
        self.console.print(Text(f"\n[{signal}] {message}", style="bold magenta"))

    def _on_process_died(self, host: str, name: str, log: str, tail: str) -> None:
        self.console.print(Text(f"\nCRITICAL PROCESS DIED: '{name}' on {host} (log {log})", style="bold red"))
        self.console.print(Text(_indent(tail), style="dim"))

    def _on_run_error(self, message: str) -> None:
        self.console.print(Text(f"\nERROR: {message}", style="bold red"))

    def _on_rescue(self, task: str, hosts: list[str]) -> None:
        pass

    def _on_teardown_start(self, entries: int) -> None:
        self._rule(f"TEARDOWN [{entries} step{'s' if entries != 1 else ''}]")

    def _on_teardown_step(self, tier: int, label: str, status: str, detail: str) -> None:
        style = "green" if status == "ok" else "red"
        self.console.print(Text(f"{status}: tier {tier}: {label} ({detail})", style=style))

    def _on_teardown_aborted(self, left: list[str], message: str) -> None:
        self.console.print(Text(f"\n[WARNING]: {message}", style="bold magenta"))

    def _on_recap(self, recap: dict[str, dict[str, int]], run_dir: str, status: str) -> None:
        self._rule("PLAY RECAP")
        width = max((len(h) for h in recap), default=0)
        for host, stats in recap.items():
            failed = stats.get("failed", 0) or stats.get("unreachable", 0)
            counts = "  ".join(f"{col}={stats.get(col, 0)}" for col in STATS)
            self.console.print(Text(f"{host:<{width}} : ", style="red" if failed else "green") + Text(counts))
        self.console.print(f"\nrun directory: {run_dir}  status: [bold]{status}[/]")

    def _on_down_signal(self, run_id: str, pid: int | None = None, job_id: str | None = None) -> None:
        owner = f"job {job_id}" if job_id else f"pid {pid}"
        self.console.print(f"run {run_id} is still running ({owner}); asked it to stop and tear down")

    def _on_detached(self, message: str, **_: Any) -> None:
        self.console.print(message)

    def _on_holding(self, message: str) -> None:
        self.console.print(Text(message, style="cyan"))

    def _on_down_done(self, run_id: str, status: str, problems: list[str] | None = None) -> None:
        self.console.print(f"run {run_id}: {status}")
        for p in problems or []:
            self.console.print(Text(f"  {p}", style="red"))


class JsonDisplay:
    """``--output json``: one event per line on stdout."""

    def __init__(self, console: Console | None = None) -> None:
        self._lock = threading.RLock()

    def emit(self, kind: str, **d: Any) -> None:
        from engine.executor.runner import _plain

        with self._lock:
            print(json.dumps({"event": kind, **_plain(d)}, sort_keys=True, default=str), flush=True)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in str(text).splitlines())


def code_frame(file: str, line: int, col: int, context: int = 2) -> str | None:
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not 1 <= line <= len(lines):
        return None
    out = []
    width = len(str(min(len(lines), line + context)))
    for n in range(max(1, line - context), min(len(lines), line + context) + 1):
        marker = ">" if n == line else " "
        out.append(f"{marker} {n:>{width}} | {lines[n - 1]}")
        if n == line:
            out.append(f"  {' ' * width} | {' ' * (col - 1)}^")
    return "\n".join(out)


def render_error(err: SmlplayError, console: Console) -> None:
    """Print an error once: location, message, context, code frame, hint."""
    kind = {"ValidationError": "error", "TemplateError": "template error"}.get(type(err).__name__, "error")
    head = Text()
    if err.pos is not None:
        head.append(f"{err.pos}: ", style="bold")
    head.append(f"{kind}: ", style="bold red")
    head.append(err.message)
    console.print(head)
    if err.context:
        console.print(Text(f"  in {err.context}", style="dim"))
    if err.pos is not None:
        frame = mask_text(code_frame(err.pos.file, err.pos.line, err.pos.col) or "")  # a secret written in the YAML
        if frame:
            console.print(Text(frame, style="dim"))
    if err.hint:
        console.print(Text(f"  hint: {err.hint}", style="cyan"))
