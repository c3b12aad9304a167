"""The simulated SGLang HTTP server (aiohttp): routes, start-up, readiness and shutdown.

HTTP surface (SGLang 0.5.9 names; see ``protocol.py`` for the response shapes):

* health: ``/health`` and ``/health_generate`` (503 until ready), ``/ping``;
* info: ``/get_server_info`` = ``/server_info``, ``/get_model_info`` = ``/model_info``,
  ``/v1/models``, ``/get_load``, ``/sim/info`` (simulator only);
* generation: ``/generate``, ``/v1/completions``, ``/v1/chat/completions``;
* control: ``/flush_cache``; ``/start_profile`` and ``/stop_profile`` record the simulated
  forward steps into a Chrome trace file (``profiler.py``);
* ``/metrics``: always on (SGLang needs ``--enable-metrics``; scraping a simulator costs nothing).

``/health_generate`` runs a one-token generation through the scheduler, as SGLang does; on a
prefill or decode server it uses SGLang's fake bootstrap host, so a decode answers 200 without
any prefill (a real decode's health check does the same), and a saturated server answers 503
after 20 s instead of hanging.

A server with ``--node-rank >= 1`` is a follower of a multi-node worker: like SGLang it serves
only ``/health``, ``/health_generate`` and ``/ping`` (200 once it has joined the leader).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import ClientSession, ClientTimeout, web
from aiohttp.http_exceptions import BadHttpMessage

from engine.sim import dist
from engine.sim.bootstrap import BootstrapServer
from engine.sim.config import FAKE_BOOTSTRAP_HOST, SGLANG_VERSION, SimConfig
from engine.sim.core import BootstrapInfo, GenRequest, SimCore, SimRequestError, Step
from engine.sim.metrics import Metrics
from engine.sim.model import Prompt
from engine.sim.profiler import ProfileError
from engine.sim.protocol import (
    ChatStream,
    CompletionStream,
    GenerateStream,
    chat_response,
    completion_response,
    generate_output,
    openai_error,
    parse_chat,
    parse_completion,
    parse_generate,
)

log = logging.getLogger("engine.sim")

#: SGLang's HEALTH_CHECK_TIMEOUT: a health generation that takes longer means "unhealthy".
HEALTH_CHECK_TIMEOUT_S = 20.0
#: SGLang prints this when it is ready; log-based readiness probes written for SGLang match it.
READY_LINE = "The server is fired up and ready to roll!"
#: Paths that answer while the server is still "loading the model".
_ALWAYS_ON = frozenset(
    {
        "/health",
        "/health_generate",
        "/ping",
        "/sim/info",
        "/metrics",
        "/get_server_info",
        "/server_info",
    }
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Stream(Protocol):
    def chunks(self, ids: tuple[int, ...], finished: bool) -> list[dict[str, Any]]: ...
    def tail(self, n_tokens: int) -> list[dict[str, Any]]: ...


def _quiet_bad_http(record: logging.LogRecord) -> bool:
    """Drop aiohttp's traceback for non-HTTP/1 bytes on the port.

    sglang-router probes every worker URL over gRPC (HTTP/2) as well as HTTP; uvicorn answers
    that with a one-line warning, aiohttp with a full traceback at ERROR level on each worker
    registration. The probe is expected, so it is logged at debug level instead.
    """
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, BadHttpMessage):
        log.debug("sim: ignored a non-HTTP/1.1 request (the router's gRPC probe)")
        return False
    return True


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class SimServer:
    """One simulated SGLang server process: its HTTP app, bootstrap server and life cycle."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.ready = False
        self.exit_code = 0
        self._stop: asyncio.Event | None = None
        self._started = time.monotonic()
        self._session: ClientSession | None = None
        self.bootstrap: BootstrapServer | None = None
        self.core = SimCore(config, self.metrics)
        self._joined_leader: asyncio.Event | None = None
        self.routes: collections.Counter[str] = collections.Counter()

    # --- life cycle ---------------------------------------------------------------------

    def stop(self, exit_code: int = 0, reason: str | None = None) -> None:
        """Ask :meth:`run` to shut down (idempotent; the first non-zero code wins)."""
        if reason:
            (log.error if exit_code else log.info)("%s", reason)
        if exit_code and not self.exit_code:
            self.exit_code = exit_code
        if self._stop is not None:
            self._stop.set()

    async def run(self) -> int:
        """Serve until stopped (signal, ``--sim-max-lifetime``, or a lost peer); the exit code."""
        cfg = self.config
        self._stop = asyncio.Event()
        logging.getLogger("aiohttp.server").addFilter(_quiet_bad_http)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, 0, f"sim: got {sig.name}, shutting down")
        if cfg.max_lifetime_s is not None:
            loop.call_later(
                cfg.max_lifetime_s,
                self.stop,
                0,
                f"sim: --sim-max-lifetime {cfg.max_lifetime_s:g}s reached, exiting",
            )
        async with contextlib.AsyncExitStack() as stack:
            try:
                await self._start(stack)
            except OSError as exc:
                log.error("sim: cannot start: %s", exc)
                return 1
            starting = asyncio.create_task(self._become_ready(stack))
            await self._stop.wait()
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        return self.exit_code

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        cfg = self.config
        if not cfg.is_follower:
            self._session = await stack.enter_async_context(
                ClientSession(timeout=ClientTimeout(total=None))
            )
            if cfg.disaggregation_mode == "prefill":
                self.bootstrap = BootstrapServer(info=self.info())
                await self._serve(
                    stack, self.bootstrap.app, cfg.disaggregation_bootstrap_port, "bootstrap server"
                )
            self.core = SimCore(cfg, self.metrics, self._session, self.bootstrap)
        await self._serve(stack, self.build_app(), cfg.port, "HTTP server")

    async def _serve(
        self, stack: contextlib.AsyncExitStack, app: web.Application, port: int, what: str
    ) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        try:
            await web.TCPSite(runner, self.config.host, port, shutdown_timeout=0.5).start()
        except OSError as exc:
            raise OSError(
                exc.errno, f"{what} cannot listen on {self.config.host}:{port}: {exc.strerror}"
            ) from exc
        log.info("sim: %s listening on http://%s:%d", what, self.config.host, port)

    async def _become_ready(self, stack: contextlib.AsyncExitStack) -> None:
        """Wait for the multi-node peers and the simulated model loading, then turn healthy."""
        cfg = self.config
        try:
            if cfg.nnodes > 1:
                await self._rendezvous(stack)
            await asyncio.sleep(
                max(0.0, cfg.latency.startup_delay_s - (time.monotonic() - self._started))
            )
        except (OSError, ValueError) as exc:
            self.stop(1, f"sim: multi-node start-up failed: {exc}")
            return
        self.ready = True
        log.info(
            "%s (mode=%s, model=%s, port=%d)",
            READY_LINE,
            cfg.disaggregation_mode,
            cfg.served_model_name,
            cfg.port,
        )

    async def _rendezvous(self, stack: contextlib.AsyncExitStack) -> None:
        cfg = self.config
        if not cfg.dist_init_addr:
            raise ValueError(f"--nnodes {cfg.nnodes} needs --dist-init-addr HOST:PORT")
        host, port = dist.split_addr(cfg.dist_init_addr)
        if cfg.is_follower:
            self._joined_leader = asyncio.Event()
            task = asyncio.create_task(
                dist.join(
                    host,
                    port,
                    cfg.node_rank,
                    cfg.nnodes,
                    self._joined_leader,
                    lambda why: self.stop(1, why),
                )
            )
            stack.callback(task.cancel)
            await self._joined_leader.wait()
            return
        leader = dist.Leader(cfg.nnodes, lambda why: self.stop(1, why))
        await leader.start(host, port)
        stack.push_async_callback(leader.close)
        log.info(
            "sim: waiting for %d more node(s) at --dist-init-addr %s:%d", cfg.nnodes - 1, host, port
        )
        await leader.all_joined.wait()

    # --- app ----------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        """The HTTP routes; a follower rank gets only the health routes, as in SGLang."""
        app = web.Application(middlewares=[self._count_routes, self._readiness_middleware])
        r = app.router
        r.add_get("/health", self._health)
        r.add_get("/ping", self._ping)
        r.add_get("/health_generate", self._health_generate)
        if self.config.is_follower:
            return app
        r.add_get("/sim/info", self._sim_info)
        for path in ("/get_model_info", "/model_info"):
            r.add_get(path, self._model_info)
        for path in ("/get_server_info", "/server_info"):
            r.add_get(path, self._server_info)
        r.add_get("/v1/models", self._models)
        r.add_get("/v1/models/{model:.*}", self._model)
        r.add_get("/get_load", self._get_load)
        r.add_get("/v1/loads", self._v1_loads)
        r.add_get("/metrics", self._metrics)
        r.add_get("/flush_cache", self._control)
        r.add_post("/flush_cache", self._control)
        for method in ("GET", "POST"):  # SGLang serves both
            r.add_route(method, "/start_profile", self._start_profile)
            r.add_route(method, "/stop_profile", self._stop_profile)
        r.add_post("/generate", self._generate)
        r.add_put("/generate", self._generate)
        r.add_post("/v1/completions", self._completions)
        r.add_post("/v1/chat/completions", self._chat)
        return app

    @web.middleware
    async def _count_routes(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """``METHOD PATH STATUS`` -> count, in ``sim_routes``: what a router asked of this server."""
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            self.routes[f"{request.method} {request.path} {exc.status}"] += 1
            raise
        self.routes[f"{request.method} {request.path} {resp.status}"] += 1
        return resp

    @web.middleware
    async def _readiness_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if not self.ready and request.path not in _ALWAYS_ON:
            return web.json_response(
                {"error": {"message": "the server is still starting (simulated model loading)"}},
                status=503,
            )
        return await handler(request)

    # --- health and info ----------------------------------------------------------------

    async def _health(self, _: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503)

    async def _ping(self, _: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _health_generate(self, _: web.Request) -> web.Response:
        if not self.ready:
            return web.Response(status=503)
        if self.config.is_follower:
            return web.Response(status=200)
        fake = None
        if self.config.disaggregation_mode != "null":
            fake = BootstrapInfo(FAKE_BOOTSTRAP_HOST, 0, 0)
        req = GenRequest(
            rid=f"HEALTH_CHECK_{time.time()}",
            prompt=Prompt.from_ids([0]),
            max_new_tokens=1,
            bootstrap=fake,
            log_metrics=False,
        )
        try:
            async with asyncio.timeout(HEALTH_CHECK_TIMEOUT_S):
                async with contextlib.aclosing(self.core.generate(req)) as steps:
                    async for _step in steps:
                        break
        except (TimeoutError, SimRequestError) as exc:
            log.error("sim: health check generation failed: %s", exc or "timeout")
            return web.Response(status=503)
        return web.Response(status=200)

    def info(self) -> dict[str, Any]:
        """Who this server is; served on ``/sim/info`` here and on the bootstrap server."""
        cfg = self.config
        return {
            "sim": True,
            "model": cfg.served_model_name,
            "disaggregation_mode": cfg.disaggregation_mode,
            "http_port": cfg.port,
            "bootstrap_port": (
                cfg.disaggregation_bootstrap_port if cfg.disaggregation_mode == "prefill" else None
            ),
            "tp_size": cfg.tp_size,
            "dp_size": cfg.dp_size,
            "pp_size": cfg.pp_size,
        }

    async def _sim_info(self, _: web.Request) -> web.Response:
        return web.json_response(self.info())

    async def _model_info(self, _: web.Request) -> web.Response:
        cfg = self.config
        return web.json_response(
            {
                "model_path": cfg.model_path,
                "tokenizer_path": cfg.tokenizer_path or cfg.model_path,
                "is_generation": True,
                "preferred_sampling_params": None,
                "weight_version": "default",
                "has_image_understanding": False,
                "has_audio_understanding": False,
                "model_type": "sim",
                "architectures": ["SimForCausalLM"],
            }
        )

    async def _server_info(self, _: web.Request) -> web.Response:
        cfg = self.config
        core = self.core
        return web.json_response(
            {
                **cfg.server_args(),
                "max_total_num_tokens": cfg.max_total_num_tokens,
                "max_req_input_len": cfg.context_length - 1,
                "internal_states": [
                    {
                        "avg_spec_accept_length": None,
                        "last_gen_throughput": self._gen_throughput(),
                        "memory_usage": {
                            "weight": 0.0,
                            "kvcache": 0.0,
                            "token_capacity": cfg.max_total_num_tokens,
                        },
                    }
                ],
                "version": SGLANG_VERSION,
                "sim": True,
                "sim_ready": self.ready,
                "sim_settings": cfg.sim_settings(),
                "sim_unknown_args": list(cfg.unknown_args),
                "sim_ignored_args": list(cfg.ignored_args),
                "sim_argv": list(cfg.argv),
                "sim_counters": dict(self.metrics.counters),
                "sim_running_reqs": core.scheduler.running,
                "sim_queued_reqs": core.scheduler.queued,
                "sim_last_kv_transfer": core.last_kv_transfer,
                "sim_last_kv_error": core.last_kv_error,
                "sim_last_bootstrap_port_mismatch": core.last_port_mismatch,
                "sim_routes": dict(self.routes),
                "sim_profiling": core.profiler.active,
                "sim_profiles": list(core.profiler.written),
            }
        )

    def _model_card(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "id": cfg.served_model_name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "sglang",
            "root": cfg.model_path,
            "parent": None,
            "max_model_len": cfg.context_length,
        }

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [self._model_card()]})

    async def _model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name != self.config.served_model_name:
            return web.json_response(
                openai_error(f"The model '{name}' does not exist", "NotFoundError", 404), status=404
            )
        return web.json_response(self._model_card())

    async def _get_load(self, _: web.Request) -> web.Response:
        sched = self.core.scheduler
        loads = []
        for rank in range(self.config.dp_size):  # the whole load is reported on rank 0
            first = rank == 0
            loads.append(
                {
                    "dp_rank": rank,
                    "num_reqs": sched.running + sched.queued if first else 0,
                    "num_waiting_reqs": sched.queued if first else 0,
                    "num_tokens": self.core.used_tokens if first else 0,
                    "ts_tic": time.perf_counter(),
                }
            )
        return web.json_response(loads)

    async def _v1_loads(self, request: web.Request) -> web.Response:
        """SGLang 0.5.9's ``/v1/loads`` (core section; smg polls it for load-aware routing)."""
        cfg, sched = self.config, self.core.scheduler
        capacity = cfg.max_total_num_tokens
        loads = []
        for rank in range(cfg.dp_size):  # the whole load is reported on rank 0
            first = rank == 0
            running, waiting = (sched.running, sched.queued) if first else (0, 0)
            used = self.core.used_tokens if first else 0
            loads.append(
                {
                    "dp_rank": rank,
                    "num_running_reqs": running,
                    "num_waiting_reqs": waiting,
                    "num_used_tokens": used,
                    "max_total_num_tokens": capacity,
                    "token_usage": round(used / capacity, 4) if capacity else 0.0,
                    "gen_throughput": self._gen_throughput() if first else 0.0,
                    "cache_hit_rate": 0.0,
                    "utilization": round(running / cfg.max_running_requests, 4) if cfg.max_running_requests else 0.0,
                    "max_running_requests": cfg.max_running_requests,
                    "num_total_reqs": running + waiting,
                }
            )
        wanted = request.query.get("dp_rank")
        if wanted is not None:
            loads = [x for x in loads if str(x["dp_rank"]) == wanted]
        n = max(len(loads), 1)
        return web.json_response(
            {
                "timestamp": datetime.now(UTC).isoformat(),
                "version": SGLANG_VERSION,
                "dp_rank_count": len(loads),
                "loads": loads,
                "aggregate": {
                    "total_running_reqs": sum(x["num_running_reqs"] for x in loads),
                    "total_waiting_reqs": sum(x["num_waiting_reqs"] for x in loads),
                    "total_reqs": sum(x["num_total_reqs"] for x in loads),
                    "avg_token_usage": sum(x["token_usage"] for x in loads) / n,
                    "avg_throughput": sum(x["gen_throughput"] for x in loads) / n,
                    "avg_utilization": sum(x["utilization"] for x in loads) / n,
                },
            }
        )

    async def _control(self, request: web.Request) -> web.Response:
        if request.path == "/flush_cache":
            return web.Response(
                text="Cache flushed.\nPlease check backend logs for more details. "
                "(When there are running or waiting requests, the operation "
                "will not be performed.)\n"
            )
        return web.Response(text=f"{request.path} accepted (no effect in the simulator)\n")

    async def _start_profile(self, request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
            req = self.core.profiler.start(body if isinstance(body, dict) else {})
        except ValueError as exc:
            return web.Response(status=400, text=f"the body is not JSON: {exc}\n")
        except (ProfileError, OSError) as exc:
            return web.Response(status=400, text=f"{exc}\n")
        log.info("sim: profiling started (output %s, %s steps)", req.output_dir, req.num_steps or "until /stop_profile")
        return web.Response(text="Start profiling.\n")

    async def _stop_profile(self, _: web.Request) -> web.Response:
        try:
            path = self.core.profiler.stop()
        except (ProfileError, OSError) as exc:
            return web.Response(status=400, text=f"{exc}\n")
        log.info("sim: profile written to %s", path)
        return web.Response(text="Stop profiling. This will take some time.\n")

    def _gen_throughput(self) -> float:
        tpot = self.config.latency.tpot_s
        return self.core.scheduler.running / tpot if tpot > 0 else 0.0

    async def _metrics(self, _: web.Request) -> web.Response:
        cfg = self.config
        core = self.core
        engine_type = {"null": "unified"}.get(cfg.disaggregation_mode, cfg.disaggregation_mode)
        gauges = {
            "sglang:num_running_reqs": core.scheduler.running,
            "sglang:num_queue_reqs": core.scheduler.queued,
            "sglang:num_used_tokens": core.used_tokens,
            "sglang:token_usage": core.used_tokens / cfg.max_total_num_tokens,
            "sglang:gen_throughput": self._gen_throughput(),
            "sglang:cache_hit_rate": 0.0,
            "sglang:max_total_num_tokens": cfg.max_total_num_tokens,
            "sglang:num_decode_transfer_queue_reqs": core.transfer_queue,
            "sglang:engine_startup_time": cfg.latency.startup_delay_s,
        }
        text = self.metrics.render(
            {"model_name": cfg.served_model_name},
            {
                "model_name": cfg.served_model_name,
                "engine_type": engine_type,
                "tp_rank": "0",
                "pp_rank": "0",
                "moe_ep_rank": "0",
            },
            gauges,
        )
        return web.Response(
            text=text,
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Prometheus-Format": "0.0.4"},
        )

    # --- generation ---------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise SimRequestError(f"request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise SimRequestError("request body must be a JSON object")
        return body

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        def error(exc: SimRequestError) -> web.Response:
            return web.json_response({"error": {"message": exc.message}}, status=exc.status)

        try:
            req, stream = parse_generate(await self._body(request))
        except SimRequestError as exc:
            return error(exc)
        created = time.time()
        if stream:
            return await self._stream(request, req, GenerateStream(req, created), error)
        result = await self._collect(req)
        if isinstance(result, SimRequestError):
            return error(result)
        return web.json_response(generate_output(req, result.ids, True, created), dumps=_dumps)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            req, opts = parse_completion(await self._body(request), self.config.served_model_name)
        except SimRequestError as exc:
            return self._openai_error(exc)
        created = int(time.time())
        if opts.stream:
            return await self._stream(
                request, req, CompletionStream(req, opts, created), self._openai_error
            )
        result = await self._collect(req)
        if isinstance(result, SimRequestError):
            return self._openai_error(result)
        return web.json_response(completion_response(req, opts, result.ids, created), dumps=_dumps)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            req, opts = parse_chat(await self._body(request), self.config.served_model_name)
        except SimRequestError as exc:
            return self._openai_error(exc)
        created = int(time.time())
        if opts.stream:
            return await self._stream(
                request, req, ChatStream(req, opts, created), self._openai_error
            )
        result = await self._collect(req)
        if isinstance(result, SimRequestError):
            return self._openai_error(result)
        return web.json_response(chat_response(req, opts, result.ids, created), dumps=_dumps)

    @staticmethod
    def _openai_error(exc: SimRequestError) -> web.Response:
        return web.json_response(
            openai_error(exc.message, exc.err_type, exc.status), status=exc.status
        )

    async def _collect(self, req: GenRequest) -> Step | SimRequestError:
        """Run a non-streaming generation to the end; its last step or the error."""
        last = Step((), True)
        try:
            async with contextlib.aclosing(self.core.generate(req)) as steps:
                async for step in steps:
                    last = step
        except SimRequestError as exc:
            return exc
        return last

    async def _stream(
        self,
        request: web.Request,
        req: GenRequest,
        fmt: _Stream,
        error: Callable[[SimRequestError], web.Response],
    ) -> web.StreamResponse:
        """Server-sent events, one ``data:`` line per chunk, ``data: [DONE]`` at the end.

        The first token is awaited before the response starts, so a request that fails early
        (a decode that cannot fetch its KV) gets a real HTTP error status, not a 200 stream.
        """
        async with contextlib.aclosing(self.core.generate(req)) as steps:
            try:
                first = await anext(steps)
            except SimRequestError as exc:
                return error(exc)
            resp = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await resp.prepare(request)
            last = first
            try:
                try:
                    async for step in _chain(first, steps):
                        await self._send(resp, fmt.chunks(step.ids, step.finished))
                        last = step
                    await self._send(resp, fmt.tail(len(last.ids)))
                except SimRequestError as exc:
                    await self._send(resp, [{"error": {"message": exc.message}}])
                await resp.write(b"data: [DONE]\n\n")
                await resp.write_eof()
            except ConnectionResetError:
                log.info("sim: client went away during request %s", req.rid)
        return resp

    @staticmethod
    async def _send(resp: web.StreamResponse, chunks: list[dict[str, Any]]) -> None:
        for chunk in chunks:
            await resp.write(f"data: {_dumps(chunk)}\n\n".encode())


async def _chain(first: Step, rest: AsyncIterator[Step]) -> AsyncIterator[Step]:
    yield first
    async for step in rest:
        yield step
