"""A local stand-in for OpenTela's ``otela start``: it records and supervises, nothing more.

The real ``otela`` (formerly ``ocf``) is a Go binary that joins a libp2p network, wraps the
framework process given with ``--subprocess``, publishes it once healthy and routes requests to
it from other peers. It cannot be installed on the machines this project is tested on, so the
``opentela-register`` role runs this module instead when it runs locally. It is NOT OpenTela:

* it joins no network: ``--bootstrap.addr`` is checked for shape and recorded, never dialled,
  and the peer table holds only this peer (its id is a made-up libp2p-style string);
* it does what the role depends on: runs ``--subprocess`` split on whitespace without a shell
  (as the real one does, so quoted arguments break; roles stage commands in a script file),
  forwards its output and exit code, polls ``/health`` then ``/v1/models`` on
  ``127.0.0.1:--service.port`` every ``--service.health_interval`` and "registers" the service
  under the first served model id, deregisters it after ``--service.health_failures``
  consecutive failed polls and on shutdown, and stops the subprocess's process group on
  SIGTERM/SIGINT (SIGKILL after 10 s);
* it serves the parts of OpenTela's HTTP API that roles and tests touch, on 127.0.0.1 only:
  ``GET /v1/health``, ``GET /v1/self``, ``GET /v1/dnt/table`` and
  ``POST /v1/service/{name}/{path}`` (forwarded to the local service once registered, else 503
  "No provider found for the requested service."). The table's shape is modelled on OpenTela's
  peer entries (``service`` list with ``identity_group`` ``model=NAME``); only "peers and their
  services" is documented, so do not rely on other fields;
* it appends one JSON line per event to the file named by ``OTELA_STANDIN_RECORD`` (see
  :class:`Recorder`), so tests can check exactly how the role invoked it.

``--api.port`` (or env ``OTELA_STANDIN_API_PORT``) is the stand-in's own switch for the API port
(real default 8092), so parallel tests do not collide; roles should set the env variable, not the
flag, so the command line they render stays valid for the real binary.

Run: ``python -m engine.sim.otela start [--bootstrap.addr MULTIADDR] [--service.name NAME
--service.port PORT] [--subprocess "COMMAND"] [--service.health_path /health]
[--service.health_interval 10s] [--service.health_failures 3] [--api.port 8092]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

log = logging.getLogger("engine.sim.otela")

#: OpenTela's default HTTP API port.
DEFAULT_API_PORT = 8092
RECORD_ENV = "OTELA_STANDIN_RECORD"
API_PORT_ENV = "OTELA_STANDIN_API_PORT"
NO_PROVIDER = "No provider found for the requested service."
#: How long a stopped subprocess group gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 10.0
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_MULTIADDR = re.compile(
    r"^/(ip4|ip6|dns|dns4|dns6)/[^/]+/(tcp|udp)/\d{1,5}(/quic|/quic-v1)?/p2p/[1-9A-HJ-NP-Za-km-z]+$"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class UsageError(Exception):
    """A command line the stand-in refuses (exit code 2, like a flag parse error)."""


def parse_duration(text: str) -> float:
    """Seconds from a Go duration (``10s``, ``500ms``, ``1m30s``) or a bare number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (use e.g. 10s, 500ms, 0.2)")
    return total


@dataclass(frozen=True)
class Options:
    """``otela start`` flags as parsed; ``flags()`` gives them under their real names."""

    bootstrap_addr: str | None
    service_name: str | None
    service_port: int | None
    subprocess: str | None
    health_path: str
    health_interval_s: float
    health_failures: int
    api_port: int

    @property
    def subprocess_argv(self) -> list[str]:
        """Whitespace split without a shell, as the real ``otela`` does (quotes are not special)."""
        return self.subprocess.split() if self.subprocess else []

    def flags(self) -> dict[str, Any]:
        return {
            "bootstrap.addr": self.bootstrap_addr,
            "service.name": self.service_name,
            "service.port": self.service_port,
            "subprocess": self.subprocess,
            "service.health_path": self.health_path,
            "service.health_interval": self.health_interval_s,
            "service.health_failures": self.health_failures,
            "api.port": self.api_port,
        }


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m engine.sim.otela",
        allow_abbrev=False,
        description=(
            "STAND-IN for OpenTela's `otela` (not OpenTela): joins no network; it only records "
            f"its invocations (JSON lines in ${RECORD_ENV}), supervises --subprocess, polls the "
            "service's health and serves a small local copy of the HTTP API on 127.0.0.1."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser(
        "start",
        allow_abbrev=False,
        help="run --subprocess and register its service (stand-in: recorded, not published)",
        description=(
            "STAND-IN for OpenTela's `otela start` (not OpenTela): joins no network and "
            "publishes nothing; it records its invocation and supervises --subprocess."
        ),
    )
    start.add_argument(
        "--bootstrap.addr",
        dest="bootstrap_addr",
        metavar="MULTIADDR",
        help="/ip4/IP/tcp/PORT/p2p/PEER_ID (checked and recorded, never dialled)",
    )
    start.add_argument(
        "--service.name",
        dest="service_name",
        metavar="NAME",
        help="service to publish (with --service.port; neither = metrics-only)",
    )
    start.add_argument(
        "--service.port",
        dest="service_port",
        metavar="PORT",
        help="local HTTP port of the wrapped service",
    )
    start.add_argument(
        "--subprocess",
        dest="subprocess",
        metavar="COMMAND",
        help="command to run, split on whitespace WITHOUT a shell (quotes break)",
    )
    start.add_argument(
        "--service.health_path", dest="health_path", default="/health", help="default /health"
    )
    start.add_argument(
        "--service.health_interval",
        dest="health_interval",
        default="10s",
        help="poll interval: Go duration or seconds (default 10s)",
    )
    start.add_argument(
        "--service.health_failures",
        dest="health_failures",
        default="3",
        help="consecutive failed polls before deregistering (default 3)",
    )
    start.add_argument(
        "--api.port",
        dest="api_port",
        default=None,
        help=f"stand-in only: API port (default ${API_PORT_ENV} or "
        f"{DEFAULT_API_PORT}); roles should set the env variable instead",
    )
    return parser


def _port(text: str, what: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise UsageError(f"{what}: {port} is out of range 1-65535")
    return port


def parse_args(argv: Sequence[str]) -> Options:
    """Parse and validate ``start ...``; :class:`UsageError` for anything the role got wrong."""
    ns = build_parser().parse_args(list(argv))
    if (ns.service_name is None) != (ns.service_port is None):
        raise UsageError(
            "--service.name and --service.port go together (give neither for a metrics-only node)"
        )
    if ns.service_name is not None and not ns.service_name.strip():
        raise UsageError("--service.name is empty")
    if ns.bootstrap_addr is not None and not _MULTIADDR.match(ns.bootstrap_addr):
        raise UsageError(
            f"--bootstrap.addr {ns.bootstrap_addr!r} is not a multiaddr like "
            "/ip4/IP/tcp/43905/p2p/PEER_ID"
        )
    if ns.subprocess is not None and not ns.subprocess.split():
        raise UsageError("--subprocess is empty")
    if not ns.health_path.startswith("/"):
        raise UsageError(f"--service.health_path {ns.health_path!r} must start with /")
    try:
        interval = parse_duration(ns.health_interval)
    except ValueError as exc:
        raise UsageError(f"--service.health_interval: {exc}") from None
    if interval <= 0:
        raise UsageError("--service.health_interval must be positive")
    try:
        failures = int(ns.health_failures)
    except ValueError:
        raise UsageError(
            f"--service.health_failures: {ns.health_failures!r} is not an integer"
        ) from None
    if failures < 1:
        raise UsageError("--service.health_failures must be at least 1")
    api = ns.api_port or os.environ.get(API_PORT_ENV) or str(DEFAULT_API_PORT)
    return Options(
        bootstrap_addr=ns.bootstrap_addr,
        service_name=ns.service_name,
        service_port=None if ns.service_port is None else _port(ns.service_port, "--service.port"),
        subprocess=ns.subprocess,
        health_path=ns.health_path,
        health_interval_s=interval,
        health_failures=failures,
        api_port=_port(api, "--api.port"),
    )


def fake_peer_id() -> str:
    """A made-up id shaped like a libp2p Ed25519 peer id (``12D3KooW`` + base58)."""
    return "12D3KooW" + "".join(secrets.choice(_BASE58) for _ in range(44))


class Recorder:
    """Appends one JSON object per line to ``$OTELA_STANDIN_RECORD`` (nothing if unset).

    Every line has ``event``, ``invocation`` (one id per run), ``pid``, ``peer_id``, ``time``
    (ISO 8601 UTC) and ``unix``; ``started`` adds ``argv``, ``flags`` (real flag names),
    ``subprocess_argv``, ``subprocess_pid``, ``cwd``. One ``os.write`` per line on an
    ``O_APPEND`` file, so several stand-ins can share a record file.
    """

    def __init__(self, path: str | None, peer_id: str) -> None:
        self.path = path
        self.peer_id = peer_id
        self.invocation = uuid.uuid4().hex

    def __call__(self, event: str, **data: Any) -> None:
        if not self.path:
            return
        now = time.time()
        line = {
            "event": event,
            "invocation": self.invocation,
            "pid": os.getpid(),
            "peer_id": self.peer_id,
            "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "unix": now,
            **data,
        }
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)


def read_record(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All events of a record file, in order (for tests of roles that run the stand-in)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class Registration:
    """The service as the peer table shows it, once registered."""

    name: str
    port: int
    model: str
    registered_at: float = field(default_factory=time.time)


class StandIn:
    """One ``otela start`` run: API server, subprocess, health polling, shutdown."""

    def __init__(self, opts: Options, record: Recorder, argv: Sequence[str]) -> None:
        self.opts = opts
        self.argv = list(argv)
        self.record = record
        self.peer_id = record.peer_id
        self.registration: Registration | None = None
        self.child: asyncio.subprocess.Process | None = None
        self._session: ClientSession | None = None
        self._stop = asyncio.Event()
        self._stop_reason = ""

    # --- HTTP API -------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/health", self._health)
        app.router.add_get("/v1/self", self._self)
        app.router.add_get("/v1/dnt/table", self._table)
        app.router.add_route("*", "/v1/service/{name}/{path:.*}", self._forward)
        return app

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _self(self, _: web.Request) -> web.Response:
        return web.json_response({"id": self.peer_id, "standin": True})

    async def _table(self, _: web.Request) -> web.Response:
        reg = self.registration
        services = []
        if reg is not None:
            services.append(
                {
                    "name": reg.name,
                    "host": "127.0.0.1",
                    "port": str(reg.port),
                    "status": "connected",
                    "identity_group": [f"model={reg.model}"],
                }
            )
        peer = {
            "id": self.peer_id,
            "connected": True,
            "service": services,
            "last_seen": int(time.time()),
            "standin": True,
        }
        return web.json_response({self.peer_id: peer})

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        """Route to the local service if it is registered under that name (and model, if given)."""
        reg = self.registration
        body = await request.read()
        if reg is None or request.match_info["name"] != reg.name or not self._model_matches(body):
            return web.json_response({"error": NO_PROVIDER}, status=503)
        assert self._session is not None
        url = f"http://127.0.0.1:{reg.port}/{request.match_info['path']}"
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")
        }
        try:
            async with self._session.request(
                request.method, url, data=body, headers=headers, params=request.query
            ) as upstream:
                resp = web.StreamResponse(status=upstream.status)
                if "Content-Type" in upstream.headers:
                    resp.content_type = upstream.content_type
                await resp.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except ClientError as exc:
            return web.json_response({"error": f"provider unreachable: {exc}"}, status=502)

    def _model_matches(self, body: bytes) -> bool:
        """OpenTela matches the request's ``model`` against ``model=NAME`` identity groups."""
        assert self.registration is not None
        try:
            model = json.loads(body).get("model") if body else None
        except (ValueError, AttributeError):
            return True
        return model is None or model == self.registration.model

    # --- registration ---------------------------------------------------------------------
    async def _probe(self) -> str | None:
        """The served model name if health and ``/v1/models`` both answer 200, else ``None``."""
        assert self._session is not None and self.opts.service_port is not None
        base = f"http://127.0.0.1:{self.opts.service_port}"
        timeout = ClientTimeout(total=min(max(self.opts.health_interval_s, 0.5), 10.0))
        try:
            async with self._session.get(base + self.opts.health_path, timeout=timeout) as r:
                if r.status != 200:
                    return None
            async with self._session.get(base + "/v1/models", timeout=timeout) as r:
                if r.status != 200:
                    return None
                data = await r.json(content_type=None)
            return str(data["data"][0]["id"])
        except (ClientError, TimeoutError, ValueError, KeyError, IndexError, TypeError):
            return None

    async def _poll_service(self) -> None:
        """Register once healthy; deregister after N consecutive failures; re-register later."""
        opts = self.opts
        assert opts.service_name is not None and opts.service_port is not None
        failures = 0
        while True:
            model = await self._probe()
            if model is not None:
                failures = 0
                if self.registration is None:
                    self.registration = Registration(opts.service_name, opts.service_port, model)
                    self.record(
                        "registered", service=opts.service_name, port=opts.service_port, model=model
                    )
                    log.info(
                        "otela-standin: registered service %s (model %s) on port %d",
                        opts.service_name,
                        model,
                        opts.service_port,
                    )
            elif self.registration is not None:
                failures += 1
                if failures >= opts.health_failures:
                    self._deregister(f"{failures} consecutive failed health checks")
                    failures = 0
            await asyncio.sleep(opts.health_interval_s)

    def _deregister(self, reason: str, always: bool = False) -> None:
        was = self.registration is not None
        if was or always:
            self.record("deregistered", reason=reason, was_registered=was)
            log.info("otela-standin: deregistered (%s)", reason)
        self.registration = None

    # --- lifecycle ------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    async def run(self) -> int:
        """Serve the API and supervise the subprocess; the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        async with contextlib.AsyncExitStack() as stack:
            self._session = await stack.enter_async_context(
                ClientSession(timeout=ClientTimeout(total=None))
            )
            runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            try:
                await web.TCPSite(
                    runner, "127.0.0.1", self.opts.api_port, shutdown_timeout=0.5
                ).start()
            except OSError as exc:
                msg = f"API cannot listen on 127.0.0.1:{self.opts.api_port}: {exc.strerror}"
                log.error("otela-standin: %s", msg)
                self.record("error", error=msg)
                return 1
            return await self._supervise()

    async def _supervise(self) -> int:
        opts = self.opts
        spawn_error = None
        if opts.subprocess_argv:
            try:
                self.child = await asyncio.create_subprocess_exec(
                    *opts.subprocess_argv, process_group=0
                )
            except OSError as exc:
                spawn_error = f"cannot start {opts.subprocess_argv[0]!r}: {exc}"
        self.record(
            "started",
            argv=self.argv,
            flags=opts.flags(),
            subprocess_argv=opts.subprocess_argv,
            subprocess_pid=self.child.pid if self.child else None,
            cwd=os.getcwd(),
        )
        log.info(
            "otela-standin: peer %s, API on http://127.0.0.1:%d (stand-in, no network)",
            self.peer_id,
            opts.api_port,
        )
        if spawn_error is not None:
            log.error("otela-standin: %s", spawn_error)
            self.record("subprocess_exit", rc=127, error=spawn_error)
            self._deregister("subprocess could not start", always=True)
            return 127
        poller = asyncio.create_task(self._poll_service()) if opts.service_name else None
        stopping = asyncio.create_task(self._stop.wait())
        waiting: list[asyncio.Task[Any]] = [stopping]
        if self.child is not None:
            waiting.append(asyncio.create_task(self.child.wait()))
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (poller, *waiting):
                if task is not None:
                    task.cancel()
        if self.child is not None and self.child.returncode is not None:
            rc = _exit_code(self.child.returncode)
            self.record("subprocess_exit", rc=rc)
            self._deregister("subprocess exited", always=True)
            _kill_group(self.child.pid, signal.SIGKILL)  # leftovers the subprocess spawned
            return rc
        self._deregister(f"got {self._stop_reason}", always=True)
        if self.child is not None:
            rc = await self._stop_child()
            self.record("subprocess_exit", rc=rc)
        return 0

    async def _stop_child(self) -> int:
        """SIGTERM the subprocess's group, SIGKILL it after :data:`KILL_GRACE_S`; its exit code."""
        assert self.child is not None
        _kill_group(self.child.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.child.wait(), KILL_GRACE_S)
        except TimeoutError:
            log.warning("otela-standin: subprocess ignored SIGTERM for %gs, killing", KILL_GRACE_S)
            _kill_group(self.child.pid, signal.SIGKILL)
            await self.child.wait()
        _kill_group(self.child.pid, signal.SIGKILL)
        return _exit_code(self.child.returncode or 0)


def _exit_code(returncode: int) -> int:
    """Shell convention for a subprocess killed by a signal: 128 + signal number."""
    return 128 - returncode if returncode < 0 else returncode


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, record, run; exit code 2 for a rejected command line (recorded as ``rejected``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", stream=sys.stderr)
    peer_id = fake_peer_id()
    record = Recorder(os.environ.get(RECORD_ENV), peer_id)
    try:
        opts = parse_args(args)
    except UsageError as exc:
        record("rejected", argv=args, error=str(exc))
        print(
            f"otela-standin: error: {exc}\n(see: python -m engine.sim.otela start --help)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(StandIn(opts, record, args).run())


__all__ = ["Options", "Recorder", "StandIn", "main", "parse_args", "read_record"]

if __name__ == "__main__":
    sys.exit(main())
