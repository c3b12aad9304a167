"""``smlplay mcp``: an MCP server over stdio, so an assistant can drive smlplay.

Tools: ``check``, ``render``, ``preflight``, ``run`` (detached: returns the run id at once), ``status``,
``logs``, ``down`` and ``explain-var``. Paths are relative to the server's working
directory; ``SMLPLAY_RUNS_DIR`` is honoured as by the CLI. Engine errors come back as tool
errors carrying the same text (location, hint) as the CLI prints. The ``mcp`` SDK is
imported only when the command runs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # subprocess and the SDK are imported when a tool runs, not at start-up
    import subprocess

    from mcp.server.mcpserver import MCPServer

#: How long ``run`` waits for the detached engine to create its run record.
RUN_START_TIMEOUT = 120.0
#: The most a tool returns from one log (the tail is kept).
LOG_CHARS = 20_000
INSTRUCTIONS = (
    "smlplay brings up LLM inference stacks (workers, router, benchmark) from Ansible-like "
    "playbooks on Slurm clusters or this machine. check/render a playbook first; run starts "
    "it in the background and returns a run id for status, logs and down."
)


def ToolFailed(message: str) -> Exception:
    """What a tool reports as an error result (the engine's message, location and hint):
    the SDK's ``ToolError``, which reaches the client as text; anything else would be
    reported as a crash with no message."""
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(message)


def _engine(*args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process (what the logic behind a command lives in)."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def _common(playbook: str, inventory: str | None, extra_vars: list[str] | None) -> list[str]:
    out = [playbook]
    if inventory:
        out += ["-i", inventory]
    for value in extra_vars or []:
        out += ["-e", value]
    return out


def _text(err: Exception) -> str:
    return str(err)


def _load(playbook: str, inventory: str | None, extra_vars: list[str] | None) -> tuple[Any, Any, Any, Any]:
    from engine.cli import _inventory, _options
    from engine.executor.run import load

    inv = _inventory(inventory, playbook)
    book, _, loader = load(playbook, inv)
    return book, inv, loader, _options(extra_vars=tuple(extra_vars or ()))


def check(playbook: str, inventory: str | None = None, extra_vars: list[str] | None = None) -> dict[str, Any]:
    """Validate a playbook, its roles, their arguments and every template without running
    anything (``smlplay check``). extra_vars: ``k=v``, ``@file.yaml`` or JSON strings."""
    from engine.errors import SmlplayError
    from engine.executor.run import render_plan

    try:
        book, inv, loader, options = _load(playbook, inventory, extra_vars)
        plan = render_plan(book, inv, options, loader)
    except SmlplayError as err:
        raise ToolFailed(_text(err)) from None
    return {"ok": True, "playbook": playbook, "inventory": inv, "plays": len(book.plays), "steps": sum(len(p["steps"]) for p in plan)}


def render(playbook: str, inventory: str | None = None, extra_vars: list[str] | None = None, format: str = "text") -> str:
    """Render every task for every host (the dry-run plan): format text, markdown or json."""
    from engine import plan as plan_format
    from engine.commands.render import rendered
    from engine.errors import SmlplayError

    if format not in plan_format.FORMATS:
        raise ToolFailed(f"format must be one of {', '.join(sorted(plan_format.FORMATS))}")
    try:
        plan = rendered(playbook, inventory=inventory, extra_vars=tuple(extra_vars or ()))
    except SmlplayError as err:
        raise ToolFailed(_text(err)) from None
    return str(plan_format.FORMATS[format](plan))


def preflight(playbook: str, inventory: str | None = None, extra_vars: list[str] | None = None, strict: bool = False) -> dict[str, Any]:
    """Check the deployment against the cluster before allocating (``smlplay preflight``):
    partition, account, nodes and GPUs, model and image paths, ports, the framework's flags.
    ``ok`` is false when a check fails (with strict, a warning too)."""
    from engine.cli import _inventory, _options
    from engine.errors import SmlplayError
    from engine.preflight.run import preflight as run_preflight

    try:
        report = run_preflight(playbook, _inventory(inventory, playbook), _options(extra_vars=tuple(extra_vars or ())), strict=strict)
    except SmlplayError as err:
        raise ToolFailed(_text(err)) from None
    return report.to_dict()


_CHILDREN: list[subprocess.Popen[bytes]] = []


def run(playbook: str, inventory: str | None = None, extra_vars: list[str] | None = None, keep_running: bool = False) -> dict[str, Any]:
    """Start a run in the background and return its id once the run record exists; follow
    it with status and logs, stop it with down. keep_running leaves the processes up after
    the last play (until down)."""
    import subprocess
    import threading
    import time

    from engine.runs import runs_dir

    out_dir = runs_dir() / ".mcp"
    out_dir.mkdir(parents=True, exist_ok=True)
    events = out_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{len(_CHILDREN)}.jsonl"
    argv = [sys.executable, "-m", "engine", "run", *_common(playbook, inventory, extra_vars), "--output", "json"]
    if keep_running:
        argv.append("--keep-running")
    with events.open("wb") as sink:
        child = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    _CHILDREN.append(child)
    threading.Thread(target=child.wait, daemon=True).start()  # reap it whenever it ends
    deadline = time.monotonic() + RUN_START_TIMEOUT
    while time.monotonic() < deadline:
        for line in events.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{") and '"run_start"' in line:
                event = json.loads(line)
                return {"run_id": event["run_id"], "run_dir": event["run_dir"], "pid": child.pid, "events": str(events)}
        if child.poll() is not None:
            raise ToolFailed(f"the run exited with {child.returncode} before it started:\n" + events.read_text(encoding="utf-8", errors="replace")[-LOG_CHARS:])
        time.sleep(0.1)
    raise ToolFailed(f"the run did not start within {RUN_START_TIMEOUT:.0f}s (pid {child.pid}, output in {events})")


def status(run_id: str | None = None) -> dict[str, Any]:
    """One run's status, processes (node, step, state, uptime, log), pending teardown and
    recap, as ``smlplay status RUN --output json``; without run_id, every recorded run
    (newest last)."""
    from engine.errors import SmlplayError
    from engine.runs import RunRecord
    from engine.runstatus import status_data

    if not run_id:
        return {"runs": [{"run_id": r.id, "status": r.status, "playbook": r.state.get("playbook", ""), "owner_alive": r.owner_alive()} for r in RunRecord.all()]}
    try:
        record = RunRecord.open(run_id)
    except SmlplayError as err:
        raise ToolFailed(_text(err)) from None
    # what `smlplay status RUN --output json` prints (a detached run's processes are checked from its job)
    return {**status_data(record, probe=not record.state.get("detached")), "owner_alive": record.owner_alive()}


def logs(run_id: str, task: str | None = None) -> str:
    """A run's task and process logs (the last part of each), optionally only of tasks
    whose name contains ``task``."""
    from engine.errors import SmlplayError
    from engine.runlogs import task_logs
    from engine.runs import RunRecord

    try:
        record = RunRecord.open(run_id)
    except SmlplayError as err:
        raise ToolFailed(_text(err)) from None
    paths = task_logs(record, task)
    if not paths:
        raise ToolFailed(f"no logs in run {record.id}" + (f" match task '{task}'" if task else " yet"))
    parts = []
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(f"==> {path.relative_to(record.path)} <==\n" + (text[-LOG_CHARS:] if len(text) > LOG_CHARS else text))
    return "\n".join(parts)


def down(run_id: str) -> dict[str, Any]:
    """Tear a run down (``smlplay down``): stop its processes, run pending handlers,
    release allocations. Waits until done."""
    done = _engine("down", run_id)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise ToolFailed(f"smlplay down {run_id} exited {done.returncode}:\n{output[-LOG_CHARS:]}")
    return {"run_id": run_id, "ok": True, "output": output[-LOG_CHARS:]}


def explain_var(playbook: str, name: str, host: str = "localhost", play: int = 1, inventory: str | None = None, extra_vars: list[str] | None = None) -> str:
    """Where a variable's value comes from for a host in a play (``smlplay vars --explain``):
    the winning source and what it overrides."""
    done = _engine("vars", *_common(playbook, inventory, extra_vars), "--host", host, "--play", str(play), "--explain", name, timeout=120)
    if done.returncode != 0:
        raise ToolFailed(done.stderr.strip() or done.stdout.strip())
    return done.stdout.strip()


TOOLS: dict[str, Callable[..., Any]] = {"check": check, "render": render, "preflight": preflight, "run": run, "status": status, "logs": logs, "down": down, "explain-var": explain_var}


def build_server() -> MCPServer:
    from mcp.server.mcpserver import MCPServer

    from engine import __version__

    server: MCPServer = MCPServer("smlplay", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")
    for name, fn in TOOLS.items():
        server.add_tool(fn, name=name)
    return server


@click.command()
def mcp() -> None:
    """Serve smlplay's tools (check, render, preflight, run, status, logs, down, explain-var) to an MCP
    client over stdio, e.g. {"command": "smlplay", "args": ["mcp"]} in the client's config."""
    try:
        server = build_server()
    except ImportError as exc:
        raise click.ClickException(f"the MCP SDK is not installed ({exc}): pip install 'smlplay[mcp]'") from None
    server.run("stdio")
