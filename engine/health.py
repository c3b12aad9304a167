"""Per-task health checks: wait until probes pass, fail fast if the process died.

A ``health:`` block on any task holds one or more probes, all of which must pass:

* ``http``: a URL (string) or ``{url, status, method, json, body, json_path, equals,
  condition, contains}``; ``condition`` is a bare Jinja expression over ``status``,
  ``json`` and ``text`` (``json.healthy_workers == 2``).
* ``tcp``: a port or ``{host, port}``, connect succeeds.
* ``log``: a regex (or ``{regex, path}``) found in the process log.
* ``cmd``: a shell command that exits 0.

Probes run from the host's transport (locally, over SSH through a ``direct-tcpip``
channel, or from the login node for compute nodes), so a port that only the cluster can
see is still checked. ``timeout`` (default 60 minutes: large models cold-start slowly) and
``interval`` (default 2 s) are durations; the watched process (the task's own ``process``,
or ``health.process``) dying ends the wait at once with the last 50 lines of its log.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import HealthCheckError, ValidationError
from engine.processes import last_lines
from engine.transport.base import ProcessRecord, Transport
from engine.units import format_duration, parse_duration

DEFAULT_TIMEOUT = 3600.0
DEFAULT_INTERVAL = 2.0
PROBE_KINDS = ("http", "tcp", "log", "cmd")


@dataclass(frozen=True)
class Probe:
    kind: str
    spec: Mapping[str, Any]

    def describe(self) -> str:
        s = self.spec
        if self.kind == "http":
            status = s.get("status", 200)
            extra = f" and {s['condition']}" if s.get("condition") else ""
            return f"http {s.get('method', 'GET')} {s['url']} -> {status}{extra}"
        if self.kind == "tcp":
            return f"tcp {s.get('host', '127.0.0.1')}:{s['port']}"
        if self.kind == "log":
            return f"log {s.get('path', '<process log>')} =~ /{s['regex']}/"
        return f"cmd {s['cmd']}"


@dataclass(frozen=True)
class HealthSpec:
    probes: tuple[Probe, ...]
    timeout: float = DEFAULT_TIMEOUT
    interval: float = DEFAULT_INTERVAL
    process: str | None = None

    @classmethod
    def from_rendered(
        cls, data: Mapping[str, Any], *, default_timeout: float | None = None, source: Any = None, context: str | None = None
    ) -> HealthSpec:
        """From the rendered ``health:`` block; a rendered value of the wrong type (a port
        ``"{{ name }}"`` that is not a number) is a :class:`ValidationError`, never a crash,
        placed at the field of ``source`` (the block as written) and naming ``context``."""
        from engine.load.schema import HEALTH, position_for, validate

        try:
            data = validate(HEALTH, data, what="health check", context=context)
        except ValidationError as exc:
            if source is not None:
                exc.pos = position_for(source, list(getattr(exc, "path", None) or [])) or getattr(source, "pos", None) or exc.pos
            raise
        probes: list[Probe] = []
        for kind in PROBE_KINDS:
            if kind not in data:
                continue
            value = data[kind]
            if kind == "http" and isinstance(value, list):
                # several http probes, checked in order: /health, then a real generation
                probes.extend(Probe("http", {"url": v} if isinstance(v, str) else dict(v)) for v in value)
                continue
            if kind == "http":
                spec = {"url": value} if isinstance(value, str) else dict(value)
            elif kind == "tcp":
                spec = {"port": value} if isinstance(value, int | str) else dict(value)
                spec["port"] = int(spec["port"])  # validated: a number 1-65535
            elif kind == "log":
                spec = {"regex": value} if isinstance(value, str) else dict(value)
            else:
                spec = {"cmd": value}
            probes.append(Probe(kind, spec))
        if not probes:
            raise HealthCheckError("a health block needs at least one probe: http, tcp, log or cmd")
        timeout = parse_duration(data.get("timeout", default_timeout or DEFAULT_TIMEOUT), what="health.timeout")
        interval = parse_duration(data.get("interval", DEFAULT_INTERVAL), what="health.interval")
        return cls(tuple(probes), timeout, interval, data.get("process"))

    def describe(self) -> list[str]:
        return [p.describe() for p in self.probes] + [
            f"timeout {format_duration(self.timeout)}, every {format_duration(self.interval)}"
        ]


@dataclass
class ProbeOutcome:
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def run_probe(probe: Probe, transport: Transport, *, log: str | None, evaluate: Callable[[str, dict[str, Any]], Any]) -> ProbeOutcome:
    s = probe.spec
    try:
        if probe.kind == "http":
            body = s.get("body")
            headers = {}
            if s.get("json") is not None:
                import json

                body = json.dumps(s["json"])
                headers["Content-Type"] = "application/json"
            from engine import httpclient  # http.client and email: only when a probe asks

            resp = httpclient.request(
                transport, s["url"], method=s.get("method", "GET"), body=body.encode() if body else None,
                headers=headers, timeout=min(30.0, max(2.0, parse_duration(s.get("request_timeout", 10)))),
            )
            wanted = s.get("status", 200)
            wanted_list = [int(w) for w in wanted] if isinstance(wanted, list) else [int(wanted)]
            data: dict[str, Any] = {"status": resp.status, "text": resp.text[:2000]}
            try:
                data["json"] = resp.json()
            except ValueError:
                data["json"] = None
            if resp.status not in wanted_list:
                return ProbeOutcome(False, f"HTTP {resp.status} (want {wanted})", data)
            if s.get("contains") and s["contains"] not in resp.text:
                return ProbeOutcome(False, f"body does not contain {s['contains']!r}", data)
            if s.get("json_path"):
                value: Any = data["json"]
                for part in str(s["json_path"]).split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                data["value"] = value
                if "equals" in s and value != s["equals"]:
                    return ProbeOutcome(False, f"{s['json_path']} is {value!r} (want {s['equals']!r})", data)
            if s.get("condition"):
                result = evaluate(s["condition"], data)
                if result is not True:
                    return ProbeOutcome(False, f"condition '{s['condition']}' is {result!r}", data)
            return ProbeOutcome(True, f"HTTP {resp.status}", data)
        if probe.kind == "tcp":
            conn = transport.connect_tcp(s.get("host", "127.0.0.1"), int(s["port"]), 5.0)
            conn.close()
            return ProbeOutcome(True, "port open")
        if probe.kind == "log":
            path = s.get("path") or log
            if not path:
                return ProbeOutcome(False, "no log to search (no process and no path)")
            text = transport.tail(path, 2000)
            if re.search(s["regex"], text, re.MULTILINE):
                return ProbeOutcome(True, "pattern found")
            return ProbeOutcome(False, f"/{s['regex']}/ not yet in {path}")
        result = transport.run(s["cmd"], timeout=60)
        if result.rc == 0:
            return ProbeOutcome(True, "exit 0", {"stdout": result.stdout})
        return ProbeOutcome(False, f"exit {result.rc}: {(result.stderr or result.stdout).strip()[-200:]}")
    except (OSError, EOFError, ValueError) as exc:
        return ProbeOutcome(False, f"{type(exc).__name__}: {exc}".strip())
    except Exception as exc:  # paramiko's channel errors, http.client errors
        return ProbeOutcome(False, f"{type(exc).__name__}: {exc}".strip())


def wait_healthy(
    spec: HealthSpec,
    transport: Transport,
    *,
    watched: ProcessRecord | None,
    evaluate: Callable[[str, dict[str, Any]], Any],
    progress: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    failure: threading.Event | None = None,
    death_message: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """Poll until every probe passes. Returns the check's result for ``register``."""
    start = time.monotonic()
    deadline = start + spec.timeout
    attempts = 0
    outcomes: list[ProbeOutcome] = []
    while True:
        attempts += 1
        outcomes = []
        for p in spec.probes:  # in order, stopping at the first that fails
            outcomes.append(run_probe(p, transport, log=watched.log if watched else None, evaluate=evaluate))
            if not outcomes[-1].ok:
                break
        elapsed = time.monotonic() - start
        if len(outcomes) == len(spec.probes) and all(o.ok for o in outcomes):
            return {
                "healthy": True,
                "elapsed": round(elapsed, 3),
                "attempts": attempts,
                "probes": [{"probe": p.describe(), "ok": o.ok, "detail": o.detail, **o.data} for p, o in zip(spec.probes, outcomes, strict=True)],
            }
        if watched is not None and not transport.alive(watched):
            tail = last_lines(transport, watched.log, 50)
            raise HealthCheckError(
                f"process '{watched.name}' on {watched.host} died while waiting for it to become healthy "
                f"(after {format_duration(elapsed)}); last lines of {watched.log}:\n{tail}"
            )
        if failure is not None and failure.is_set():
            raise HealthCheckError(death_message() if death_message else "a critical process died")
        if cancel is not None and cancel.is_set():
            raise HealthCheckError("health check interrupted")
        if time.monotonic() >= deadline:
            failing = "; ".join(f"{p.describe()}: {o.detail}" for p, o in zip(spec.probes, outcomes, strict=False) if not o.ok)
            message = f"not healthy after {format_duration(spec.timeout)} ({attempts} attempts): {failing}"
            if watched is not None:
                message += f"\nlast lines of {watched.log}:\n{transport.tail(watched.log, 50)}"
            raise HealthCheckError(message, hint="raise health.timeout for slow cold starts (per task, or a cluster-wide default in the inventory)")
        if progress is not None:
            waiting = next(o.detail for o in outcomes if not o.ok)
            progress(f"waiting {format_duration(elapsed)} / {format_duration(spec.timeout)}: {waiting}")
        # Poll fast at first (most things come up within a second), then every interval.
        sleep = min(spec.interval, 0.1 * attempts, max(0.0, deadline - time.monotonic()))
        if cancel is not None:
            if cancel.wait(sleep):
                raise HealthCheckError("health check interrupted")
        else:
            time.sleep(sleep)
