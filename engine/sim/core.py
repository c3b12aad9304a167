"""The request life cycle of the simulated server, independent of any HTTP format.

A request is validated for the server's disaggregation mode, waits for a scheduler slot, spends
its simulated time (TTFT, then TPOT per token) and yields its output tokens one step at a time.
In P/D mode a prefill computes only the first token and publishes the room's KV record; a decode
first fetches that record from the prefill's bootstrap server, checks that it belongs to the
same prompt, and continues from the prefill's first token. The HTTP layer (``server.py``) turns
the steps into SGLang's native or OpenAI responses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession

from engine.sim.bootstrap import BootstrapServer, KVRecord, KVTransferError, fetch_kv
from engine.sim.config import FAKE_BOOTSTRAP_HOST, SimConfig
from engine.sim.metrics import Metrics
from engine.sim.model import Prompt, output_ids
from engine.sim.profiler import Profiler
from engine.sim.scheduler import Scheduler

log = logging.getLogger("engine.sim")


class SimRequestError(Exception):
    """A request the server refuses or cannot complete; rendered per endpoint's error format."""

    def __init__(self, message: str, status: int = 400, err_type: str = "BadRequestError") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.err_type = err_type


@dataclass(frozen=True)
class BootstrapInfo:
    """The P/D routing tag the router adds to both halves of a request."""

    host: str
    port: int
    room: int

    @property
    def fake(self) -> bool:
        """SGLang's own health checks use a fake host: no transfer happens."""
        return self.host == FAKE_BOOTSTRAP_HOST

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> BootstrapInfo | None:
        """Read ``bootstrap_host/port/room``; ``None`` when absent, an error when half there."""
        fields = ("bootstrap_host", "bootstrap_port", "bootstrap_room")
        present = [f for f in fields if body.get(f) is not None]
        if not present:
            return None
        if body.get("bootstrap_host") == FAKE_BOOTSTRAP_HOST:
            return cls(
                FAKE_BOOTSTRAP_HOST,
                int(body.get("bootstrap_port") or 0),
                int(body.get("bootstrap_room") or 0),
            )
        missing = [f for f in fields if f not in present]
        if missing:
            raise SimRequestError(
                f"incomplete P/D bootstrap info: has {', '.join(present)} but not "
                f"{', '.join(missing)}"
            )
        try:
            return cls(
                str(body["bootstrap_host"]),
                int(body["bootstrap_port"]),
                int(body["bootstrap_room"]),
            )
        except (TypeError, ValueError) as exc:
            raise SimRequestError(f"bad P/D bootstrap info: {exc}") from exc


@dataclass(frozen=True)
class GenRequest:
    """One generation, whatever endpoint it came from."""

    rid: str
    prompt: Prompt
    max_new_tokens: int
    bootstrap: BootstrapInfo | None = None
    log_metrics: bool = True


@dataclass(frozen=True)
class Step:
    """The output so far (cumulative ids, as SGLang streams) and whether it is complete."""

    ids: tuple[int, ...]
    finished: bool


class SimCore:
    """Runs generations for one server; owns its scheduler, counters and KV hand-off."""

    def __init__(
        self,
        config: SimConfig,
        metrics: Metrics,
        session: ClientSession | None = None,
        bootstrap: BootstrapServer | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.scheduler = Scheduler(config.max_running_requests)
        self._session = session
        self._bootstrap = bootstrap
        self.used_tokens = 0
        self.transfer_queue = 0
        self.last_kv_transfer: dict[str, Any] | None = None
        self.last_kv_error: str | None = None
        self.last_port_mismatch: str | None = None
        self.profiler = Profiler(f"sim {config.disaggregation_mode} {config.served_model_name} :{config.port}")

    async def generate(self, req: GenRequest) -> AsyncGenerator[Step, None]:
        """Yield one :class:`Step` per output token (one step with no ids for zero tokens)."""
        cfg = self.config
        self._check(req)
        arrived = time.monotonic()
        kv = await self._receive_kv(req) if self._needs_transfer(req) else None
        finished = False
        async with self.scheduler.slot():
            seq_tokens = req.prompt.tokens + req.max_new_tokens
            self.used_tokens += seq_tokens
            try:
                if cfg.disaggregation_mode != "decode":
                    began = time.monotonic()
                    await asyncio.sleep(cfg.latency.ttft_s(req.prompt.tokens))
                    if req.log_metrics:
                        self.profiler.step("prefill", began, time.monotonic(), rid=req.rid, tokens=req.prompt.tokens)
                n = req.max_new_tokens
                if cfg.disaggregation_mode == "prefill":
                    n = min(n, 1)  # a prefill computes the first token and hands the rest over
                ids = output_ids(cfg.seed, req.prompt, n, cfg.vocab_size)
                if kv is not None and ids and kv.first_token >= 0:
                    ids[0] = kv.first_token  # continue from what the prefill computed
                if cfg.disaggregation_mode == "prefill":
                    self._publish(req, ids)
                if not ids:
                    finished = True
                    self._record(req, arrived, 0)
                    yield Step((), True)
                    return
                last = arrived
                for i in range(len(ids)):
                    if i > 0:
                        began = time.monotonic()
                        await asyncio.sleep(cfg.latency.tpot_s)
                        if req.log_metrics:
                            self.profiler.step("decode", began, time.monotonic(), rid=req.rid, token=i)
                    now = time.monotonic()
                    if req.log_metrics:
                        if i == 0:
                            self.metrics.ttft.observe(now - arrived)
                        else:
                            self.metrics.itl.observe(now - last)
                    last = now
                    done = i == len(ids) - 1
                    if done:
                        finished = True
                        self._record(req, arrived, len(ids))
                    yield Step(tuple(ids[: i + 1]), done)
            finally:
                self.used_tokens -= seq_tokens
                if not finished and req.log_metrics:
                    self.metrics.inc("aborted_requests")

    def _check(self, req: GenRequest) -> None:
        mode = self.config.disaggregation_mode
        if req.prompt.tokens + req.max_new_tokens > self.config.context_length:
            raise SimRequestError(
                f"Requested token count exceeds the model's maximum context length of "
                f"{self.config.context_length} tokens. You requested a total of "
                f"{req.prompt.tokens + req.max_new_tokens} tokens: {req.prompt.tokens} tokens "
                f"from the input messages and {req.max_new_tokens} tokens for the completion."
            )
        if mode != "null" and req.bootstrap is None:
            raise SimRequestError(
                f"{mode} server got a request without bootstrap_host/bootstrap_port/"
                f"bootstrap_room: in P/D disaggregation every request must come through a "
                f"router started with --pd-disaggregation, which sends it to a prefill and a "
                f"decode server together (was this request sent to the {mode} server directly, "
                f"or is the router in regular mode?)"
            )

    def _needs_transfer(self, req: GenRequest) -> bool:
        if self.config.disaggregation_mode != "decode" or req.bootstrap is None:
            return False
        if req.bootstrap.fake:
            self.metrics.inc("kv_fake_transfers")
            return False
        return True

    async def _receive_kv(self, req: GenRequest) -> KVRecord:
        """Fetch and check the room's KV from the prefill's bootstrap server (decode only)."""
        b = req.bootstrap
        assert b is not None and self._session is not None
        self.transfer_queue += 1
        started = time.monotonic()
        try:
            record = await fetch_kv(self._session, b.host, b.port, b.room, self.config.kv_timeout_s)
        except KVTransferError as exc:
            self._fail_transfer(str(exc))
            raise SimRequestError(str(exc), 503, "ServiceUnavailableError") from exc
        finally:
            self.transfer_queue -= 1
        if record.digest != req.prompt.digest or record.prompt_tokens != req.prompt.tokens:
            message = (
                f"decode got KV for room {b.room} from bootstrap {b.host}:{b.port} that does not "
                f"belong to this request (prefill prompt: {record.prompt_tokens} tokens, digest "
                f"{record.digest}; decode prompt: {req.prompt.tokens} tokens, digest "
                f"{req.prompt.digest}): the router paired halves of different requests"
            )
            self._fail_transfer(message)
            raise SimRequestError(message, 500, "InternalServerError")
        self.metrics.inc("kv_transfers")
        self.last_kv_transfer = {
            "room": b.room,
            "bootstrap": f"{b.host}:{b.port}",
            "prompt_tokens": record.prompt_tokens,
            "prefill_http_port": record.prefill_http_port,
            "wait_s": round(time.monotonic() - started, 6),
        }
        log.debug("decode: fetched KV for room %s from %s:%s", b.room, b.host, b.port)
        return record

    def _fail_transfer(self, message: str) -> None:
        self.metrics.inc("bootstrap_failed")
        self.last_kv_error = message
        log.error("%s", message)

    def _publish(self, req: GenRequest, ids: list[int]) -> None:
        """Prefill: publish the room's KV record on this server's bootstrap server."""
        b = req.bootstrap
        if b is None or b.fake or self._bootstrap is None:
            return
        cfg = self.config
        if b.port != cfg.disaggregation_bootstrap_port:
            self.metrics.inc("bootstrap_port_mismatches")
            self.last_port_mismatch = (
                f"prefill: request {req.rid} (room {b.room}) names bootstrap port {b.port}, but "
                f"this prefill's bootstrap server listens on port "
                f"{cfg.disaggregation_bootstrap_port}; the decode will look for the KV at "
                f"{b.host}:{b.port} and fail. Give the router --prefill URL "
                f"{cfg.disaggregation_bootstrap_port}"
            )
            log.warning("%s", self.last_port_mismatch)
        self._bootstrap.publish(
            KVRecord(
                room=b.room,
                prompt_tokens=req.prompt.tokens,
                digest=req.prompt.digest,
                first_token=ids[0] if ids else -1,
                model=cfg.served_model_name,
                prefill_http_port=cfg.port,
                bootstrap_port=cfg.disaggregation_bootstrap_port,
                published_at=time.time(),
            )
        )
        self.metrics.inc("kv_published")

    def _record(self, req: GenRequest, arrived: float, completion_tokens: int) -> None:
        if not req.log_metrics:
            return
        self.metrics.inc("requests")
        self.metrics.inc("prompt_tokens", req.prompt.tokens)
        self.metrics.inc("generation_tokens", completion_tokens)
        self.metrics.e2e.observe(time.monotonic() - arrived)
