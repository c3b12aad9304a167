"""``process`` (start a long-running background process) and ``stop``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol

from engine.actions.base import ActionContext, Result, action
from engine.load.types import Duration, NonEmptyStr, Port
from engine.transport.base import BackgroundSpec
from engine.undo import StopProcess
from engine.units import parse_duration

NAME = vol.Match(r"^[A-Za-z0-9_.@:-]+$", msg="a process name uses letters, digits and _ . @ : -")


def _describe_process(args: dict[str, Any]) -> str:
    flags = ["critical" if args.get("critical", True) else "not critical", f"tier {args.get('tier', 1)}"]
    env = " ".join(f"{k}={v}" for k, v in sorted((args.get("env") or {}).items()))
    return f"start '{args['name']}' ({', '.join(flags)}): {env + ' ' if env else ''}{args['cmd']}"


def _stop_entry(args: Mapping[str, Any], host: str) -> StopProcess:
    """What starting it registers: stop it at the end of the run, in its tier."""
    return StopProcess(host=host, name=str(args["name"]), tier=int(args.get("tier", 1)), grace=parse_duration(args.get("grace", 10), what="grace"))


@action(
    "process",
    {
        vol.Required("name"): NAME,
        vol.Required("cmd"): NonEmptyStr(),
        vol.Optional("log"): NonEmptyStr(),
        vol.Optional("env"): {str: vol.Any(str, int, float, bool)},
        vol.Optional("chdir"): NonEmptyStr(),
        vol.Optional("critical"): bool,
        vol.Optional("tier"): vol.All(int, vol.Range(min=0, max=9)),
        vol.Optional("grace"): Duration(),
        vol.Optional("ports"): [Port()],
        vol.Optional("container"): bool,
    },
    describe=_describe_process,
    teardown=_stop_entry,
)
def process(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Start a long-running background process (a server, a sidecar, a Slurm step).

    It is recorded in the run (host, pid or step, log), stopped at the end of the run in
    teardown tier order (``tier``: 0 benchmarks, 1 workers and router, 2 sidecars), and, if
    ``critical`` (the default), watched: its death fails the run with its log tail. A
    ``health:`` block on the same task waits for it to be ready. ``ports`` declares where
    it listens: two processes claiming one (address, port) is an error before the run
    starts, and a port something else already listens on fails the task at once."""
    name = str(args["name"])
    existing = ctx.processes.get(ctx.host, name)
    if existing is not None and ctx.processes.alive(existing):
        return {
            "failed": True,
            "msg": f"a process named '{name}' is already running on {ctx.host} (log {existing.log}); stop it first or pick another name",
        }
    log = args.get("log") or str(ctx.run_dir / "logs" / ctx.host / f"{name}.process.log")
    env = {**ctx.environment, **{k: str(v) for k, v in (args.get("env") or {}).items()}}
    spec = BackgroundSpec(name=name, cmd=str(args["cmd"]), log=log, env=env, cwd=args.get("chdir"))
    busy = _ports_in_use(ctx, [int(p) for p in args.get("ports") or ()])
    if busy:
        return {"failed": True, "msg": busy}
    critical = bool(args.get("critical", True))
    tier = int(args.get("tier", 1))
    record = ctx.host_transport(args.get("container", True)).start(spec, critical=critical, tier=tier)
    ctx.processes.add(record)
    if ctx.push_teardown is not None:
        ctx.push_teardown(_stop_entry(args, record.host).to_dict())
    return {"changed": True, "process": record.to_dict(), "log": log, "name": name, **dict(record.handle)}


def _ports_in_use(ctx: ActionContext, ports: list[int]) -> str | None:
    """Fail fast, naming the port, when something already listens where we would: the
    server would otherwise die at bind time (or, worse, a stale server would answer)."""
    address = str(ctx.scope.get("node_address", "127.0.0.1"))
    busy = []
    for port in ports:
        try:
            conn = ctx.transport.connect_tcp(address, port, 1.0)
        except OSError:
            continue
        except Exception:
            continue  # cannot tell (e.g. the gateway refuses forwarding): let the bind decide
        conn.close()
        busy.append(port)
    if not busy:
        return None
    listed = ", ".join(str(p) for p in busy)
    return (
        f"port {listed} on {address} is already in use on {ctx.host}: another process (perhaps a "
        "run that was not torn down; see `smlplay runs`) listens there"
    )


@action(
    "stop",
    {vol.Required("name"): NAME, vol.Optional("grace"): Duration()},
    describe=lambda a: f"stop '{a['name']}' (TERM, {a.get('grace', 10)}s grace, KILL)",
)
def stop(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Stop a named background process: SIGTERM, wait ``grace`` seconds, then SIGKILL."""
    name = str(args["name"])
    record = ctx.processes.get(ctx.host, name)
    if record is None:
        return {"changed": False, "msg": f"no process named '{name}' on {ctx.host}"}
    ran = ctx.transport.stop(record, grace=parse_duration(args.get("grace", 10), what="grace"))
    ctx.processes.remove(ctx.host, name)
    return {"changed": ran, "name": name, "msg": "stopped" if ran else "was not running"}
