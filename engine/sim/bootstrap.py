"""The simulated KV hand-off between a prefill and a decode server (P/D disaggregation).

In real SGLang a prefill server runs a small bootstrap HTTP server on
``--disaggregation-bootstrap-port``; the router tags each request with ``bootstrap_host``,
``bootstrap_port`` and a random ``bootstrap_room`` and sends it to a prefill and a decode at
once, and the decode uses host:port to find the prefill and receive the room's KV cache. If the
router was given the wrong port, decode fails, minutes into a job. The simulator keeps that
wiring real: the prefill publishes a small "KV" record per room on its bootstrap server, and the
decode really fetches it from ``bootstrap_host:bootstrap_port`` (long-polling, because the
prefill may not have finished yet), failing loudly with the address and room it tried.

Bootstrap server routes: ``/health``, ``/route`` (SGLang's, ``GET`` with ``-1`` ranks returns
the prefill's parallel info), ``/sim/info`` and ``/sim/kv/{room}?wait_s=S``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import ClientConnectorError, ClientError, ClientSession, ClientTimeout, web

log = logging.getLogger("engine.sim")

#: Rooms kept per prefill; older ones are dropped (a decode fetches a room within seconds).
MAX_ROOMS = 10000
#: Longest single long-poll on ``/sim/kv``; the decode polls again until its own deadline.
MAX_WAIT_S = 5.0


@dataclass(frozen=True)
class KVRecord:
    """What a prefill "transfers" for one room: enough for the decode to check it is the same request."""

    room: int
    prompt_tokens: int
    digest: str
    first_token: int
    model: str
    prefill_http_port: int
    bootstrap_port: int
    published_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KVRecord:
        return cls(
            room=int(data["room"]),
            prompt_tokens=int(data["prompt_tokens"]),
            digest=str(data["digest"]),
            first_token=int(data["first_token"]),
            model=str(data["model"]),
            prefill_http_port=int(data["prefill_http_port"]),
            bootstrap_port=int(data["bootstrap_port"]),
            published_at=float(data["published_at"]),
        )


class KVTransferError(Exception):
    """The decode could not get a room's KV; the message names the address and room it tried."""


class BootstrapServer:
    """A prefill's bootstrap server: an aiohttp app on its own port, holding published rooms."""

    def __init__(self, *, info: dict[str, Any]) -> None:
        self._info = info
        self._rooms: OrderedDict[int, KVRecord] = OrderedDict()
        self._waiters: dict[int, asyncio.Event] = {}
        self.app = web.Application()
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/route", self._route)
        self.app.router.add_get("/sim/info", self._sim_info)
        self.app.router.add_get("/sim/kv/{room}", self._get_kv)

    def publish(self, record: KVRecord) -> None:
        """Make ``record`` available under its room and wake decodes already waiting for it."""
        self._rooms[record.room] = record
        self._rooms.move_to_end(record.room)
        while len(self._rooms) > MAX_ROOMS:
            self._rooms.popitem(last=False)
        event = self._waiters.pop(record.room, None)
        if event is not None:
            event.set()

    async def _health(self, _: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _route(self, request: web.Request) -> web.Response:
        # Only SGLang's "-1" query (prefill parallel info) is meaningful without real ranks.
        return web.json_response(
            {
                "prefill_attn_tp_size": self._info.get("tp_size", 1),
                "prefill_dp_size": self._info.get("dp_size", 1),
                "prefill_pp_size": self._info.get("pp_size", 1),
                "prefill_page_size": 1,
            }
        )

    async def _sim_info(self, _: web.Request) -> web.Response:
        return web.json_response({"sim_bootstrap": True, **self._info})

    async def _get_kv(self, request: web.Request) -> web.Response:
        try:
            room = int(request.match_info["room"])
            wait_s = min(float(request.query.get("wait_s", "0")), MAX_WAIT_S)
        except ValueError:
            return web.json_response({"sim_bootstrap": True, "error": "bad room"}, status=400)
        record = self._rooms.get(room)
        if record is None and wait_s > 0:
            event = self._waiters.setdefault(room, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), timeout=wait_s)
            except TimeoutError:
                pass
            record = self._rooms.get(room)
            if record is None:
                # Do not keep an event per room nobody ever publishes; a waiter that shared
                # this one simply polls again.
                self._waiters.pop(room, None)
        if record is None:
            return web.json_response(
                {"sim_bootstrap": True, "error": f"room {room} not published", **self._info},
                status=404,
            )
        return web.json_response(record.to_json())


async def fetch_kv(
    session: ClientSession, host: str, port: int, room: int, timeout_s: float
) -> KVRecord:
    """Fetch ``room`` from the bootstrap server at ``host:port``, waiting up to ``timeout_s``.

    The router sends the request to prefill and decode at the same moment, so the room usually
    appears a little later: a 404 from a simulated bootstrap server means "not yet" and is
    polled again. Anything else fails at once with a message a user can act on: connection
    refused (nothing listens there: the router's bootstrap port for this prefill is wrong),
    or a server that is not a bootstrap server (e.g. the prefill's HTTP port was given).
    """
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    what = f"decode could not fetch KV for room {room} from bootstrap {addr}"
    deadline = time.monotonic() + timeout_s
    last_info: dict[str, Any] = {}
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            owner = _describe_owner(last_info)
            raise KVTransferError(
                f"{what}: the room did not appear within {timeout_s:g}s{owner}; "
                "the router sent this request's prefill half to a different prefill, "
                "or the prefill failed"
            )
        wait_s = min(remaining, MAX_WAIT_S)
        url = f"http://{addr}/sim/kv/{room}"
        try:
            async with session.get(
                url, params={"wait_s": f"{wait_s:.3f}"}, timeout=ClientTimeout(total=wait_s + 5)
            ) as resp:
                body = await _json_or_none(resp)
                if resp.status == 200 and body is not None:
                    return KVRecord.from_json(body)
                if resp.status == 404 and body is not None and body.get("sim_bootstrap"):
                    last_info = body
                    continue
                hint = await _probe_sim_server(session, addr)
                raise KVTransferError(
                    f"{what}: it answered HTTP {resp.status} to {url}, so it is not a bootstrap "
                    f"server{hint}"
                )
        except ClientConnectorError as exc:
            errno = exc.os_error.errno if exc.os_error else None
            reason = os.strerror(errno).lower() if errno else str(exc)
            raise KVTransferError(
                f"{what}: {reason} (no bootstrap server listens there; check the "
                "router's --prefill URL BOOTSTRAP_PORT against the prefill's "
                "--disaggregation-bootstrap-port)"
            ) from exc
        except (ClientError, TimeoutError) as exc:
            raise KVTransferError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _describe_owner(info: dict[str, Any]) -> str:
    if not info:
        return ""
    return (
        f" (that bootstrap server belongs to the {info.get('disaggregation_mode', '?')} server "
        f"with HTTP port {info.get('http_port', '?')} and bootstrap port "
        f"{info.get('bootstrap_port', '?')})"
    )


async def _probe_sim_server(session: ClientSession, addr: str) -> str:
    """If ``addr`` is a simulated server's HTTP port, say which bootstrap port it really has."""
    try:
        async with session.get(f"http://{addr}/sim/info", timeout=ClientTimeout(total=2)) as r:
            info = await _json_or_none(r)
    except (ClientError, TimeoutError):
        return ""
    if not info or "bootstrap_port" not in info:
        return ""
    return (
        f"; {addr} is the HTTP port of a simulated {info.get('disaggregation_mode')} server "
        f"whose bootstrap server listens on port {info['bootstrap_port']}"
    )


async def _json_or_none(resp: Any) -> dict[str, Any] | None:
    try:
        data = await resp.json(content_type=None)
    except (ValueError, ClientError):
        return None
    return data if isinstance(data, dict) else None
