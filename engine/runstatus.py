"""What ``smlplay status RUN`` shows: one row per recorded process, read from the run record.

A process's state is checked where that costs nothing: a process (or an srun step's
client) started on this machine is looked up by pid, and only if the pid was recorded on
this boot (a detached run's processes live on the job's node, where the pid means
nothing here). Others show as ``recorded`` unless ``probe`` asks their transports (an SSH round trip
per process), which ``smlplay status`` does unless told ``--no-probe``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from engine.runs import RunRecord
from engine.transport.base import ProcessRecord
from engine.units import format_duration


@dataclass(frozen=True)
class ProcessRow:
    process: str
    node: str
    step: str  # the srun step (JOB.STEP) or the pid
    state: str  # running, exited, recorded (not checked), unknown (check failed)
    uptime: float | None  # seconds, while running
    log: str  # relative to the run directory when it is inside it

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "uptime": None if self.uptime is None else round(self.uptime, 1)}


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _local_pid(handle: Mapping[str, Any], boot: str) -> int | None:
    """The pid, if the handle is of a process on this machine (same boot)."""
    if "pid" not in handle or not handle.get("boot") or handle.get("boot") != boot:
        return None
    return int(handle["pid"])


def _alive_here(proc: ProcessRecord, boot: str) -> bool | None:
    from engine.transport.local import LocalTransport

    handle = dict(proc.handle)
    if proc.transport == "srun" and isinstance(handle.get("client"), Mapping):
        client = ProcessRecord.from_dict(handle["client"])
        return _alive_here(client, boot) if client.transport == "local" else None
    if proc.transport != "local" or _local_pid(handle, boot) is None:
        return None
    return LocalTransport(proc.host).alive(proc)


def _relative_log(log: str, run_dir: str) -> str:
    path = os.path.abspath(log) if not os.path.isabs(log) else log
    root = os.path.abspath(run_dir)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else log


def _step(proc: ProcessRecord) -> str:
    handle = proc.handle
    if handle.get("step"):
        return str(handle["step"])
    return f"pid {handle['pid']}" if "pid" in handle else "-"


def process_rows(record: RunRecord, *, probe: bool = False, now: float | None = None) -> list[ProcessRow]:
    now = time.time() if now is None else now
    boot = _boot_id()
    procs = [ProcessRecord.from_dict(p) for p in record.state.get("processes", [])]
    pool = None
    if probe and procs:
        from engine.transport.pool import TransportPool

        hosts = record.state.get("hosts", {})
        pool = TransportPool(lambda h: hosts.get(h, {"connection": "local"}))
    rows = []
    try:
        for proc in sorted(procs, key=lambda p: (p.tier, p.host, p.name)):
            alive = _alive_here(proc, boot)
            state = "recorded"
            if alive is None and pool is not None and proc.host in record.state.get("hosts", {}):
                try:
                    alive = pool.get(proc.host).alive(proc)
                except Exception:  # the host went away, or cannot be reached from here
                    state = "unknown"
            if alive is not None:
                state = "running" if alive else "exited"
            uptime = now - proc.started_at if alive and proc.started_at else None
            rows.append(ProcessRow(proc.name, proc.host, _step(proc), state, uptime, _relative_log(proc.log, str(record.path))))
    finally:
        if pool is not None:
            pool.close()
    return rows


def status_data(record: RunRecord, *, probe: bool = False, job_state: str | None = None) -> dict[str, Any]:
    """Everything ``status`` prints, as JSON-ready data."""
    s = record.state
    data: dict[str, Any] = {
        "run": record.id,
        "status": record.status,
        "playbook": s.get("playbook"),
        "directory": str(record.path),
        "processes": [r.to_dict() for r in process_rows(record, probe=probe)],
        "teardown": [{"tier": e.get("tier"), "label": e.get("label", e.get("kind"))} for e in s.get("teardown", [])],
        "pending_handlers": [{"handler": p.get("handler"), "host": p.get("host")} for p in s.get("pending_handlers", [])],
        "recap": s.get("recap") or {},
    }
    if s.get("detached"):
        data["detached"] = {"job_id": s.get("job_id"), "gateway": s.get("gateway"), "state": job_state}
    return data


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]


def status_text(data: Mapping[str, Any]) -> str:
    out = [f"run {data['run']}: {data['status']}  ({data['playbook']})", f"directory: {data['directory']}"]
    if "detached" in data:
        d = data["detached"]
        out.append(f"detached: job {d['job_id']} through {d['gateway']}: {d['state']}")
    procs = data["processes"]
    if procs:
        out.append("")
        rows = [
            [p["process"], p["node"], p["step"], p["state"], format_duration(p["uptime"]) if p["uptime"] is not None else "-", p["log"]]
            for p in procs
        ]
        out += _table(["PROCESS", "NODE", "STEP", "STATE", "UPTIME", "LOG"], rows)
    else:
        out.append("no process recorded as running")
    if data["teardown"]:
        out += ["", "pending teardown (tier order):"]
        # the order the stack unwinds: tier by tier, newest first within a tier
        out += [f"  tier {e['tier']}: {e['label']}" for e in sorted(reversed(data["teardown"]), key=lambda e: int(e["tier"] or 0))]
    for p in data["pending_handlers"]:
        out.append(f"pending handler: {p['handler']} on {p['host']}")
    if data["recap"]:
        out += ["", *(f"{host}: " + " ".join(f"{k}={v}" for k, v in sorted(stats.items())) for host, stats in data["recap"].items())]
    return "\n".join(out) + "\n"
