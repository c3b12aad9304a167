"""Command line of the simulated server: SGLang's ``launch_server`` flags plus ``--sim-*`` knobs.

The roles render one command line for a real GPU cluster and for this simulator, so the simulator
must accept exactly what SGLang 0.5.9 accepts. Flags come in three kinds:

* *modelled*: parsed here and acted on (ports, parallel sizes, disaggregation mode, ...);
* *accepted*: real SGLang flags the simulator has no use for (``--attention-backend fa3``); they
  are listed under ``sim_ignored_args`` in ``/get_server_info`` and logged at start-up;
* *unknown*: not an SGLang 0.5.9 flag at all (a typo, a flag of another framework). They are
  reported with a warning on stderr and under ``sim_unknown_args``, never silently dropped and
  never fatal, so a test can assert that a rendered command is clean.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from engine.sim.sglang_flags import BOOL_FLAGS, MULTI_VALUE_FLAGS, VALUE_FLAGS

Mode = Literal["null", "prefill", "decode"]

#: SGLang's fake bootstrap host: requests carrying it (its own ``/health_generate``) skip the
#: KV transfer. The simulator honours it for the same purpose.
FAKE_BOOTSTRAP_HOST = "2.2.2.2"

#: What the simulator reports as its SGLang version: the protocol it speaks.
SGLANG_VERSION = "0.5.9"

DEFAULT_VOCAB_SIZE = 32000
DEFAULT_CONTEXT_LENGTH = 32768
DEFAULT_MAX_RUNNING_REQUESTS = 64


@dataclass(frozen=True)
class LatencyConfig:
    """The timing model: a request waits for a slot, then TTFT, then one TPOT per further token.

    TTFT = ``ttft_base_ms + ttft_per_input_token_ms * prompt_tokens`` (prefill work grows with
    the prompt); TPOT is fixed (decode steps cost the same whatever the batch, a simplification).
    """

    startup_delay_s: float = 0.0
    ttft_base_ms: float = 2.0
    ttft_per_input_token_ms: float = 0.01
    tpot_ms: float = 2.0

    def ttft_s(self, prompt_tokens: int) -> float:
        """Seconds of simulated prefill for a prompt of ``prompt_tokens`` tokens."""
        return (self.ttft_base_ms + self.ttft_per_input_token_ms * prompt_tokens) / 1000.0

    @property
    def tpot_s(self) -> float:
        """Seconds between two output tokens."""
        return self.tpot_ms / 1000.0


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulated server needs, parsed once from its command line."""

    model_path: str = "sim-model"
    served_model_name: str = "sim-model"
    tokenizer_path: str | None = None
    host: str = "127.0.0.1"
    port: int = 30000
    tp_size: int = 1
    dp_size: int = 1
    ep_size: int = 1
    pp_size: int = 1
    disaggregation_mode: Mode = "null"
    disaggregation_bootstrap_port: int = 8998
    disaggregation_transfer_backend: str = "mooncake"
    disaggregation_ib_device: str | None = None
    dist_init_addr: str | None = None
    nnodes: int = 1
    node_rank: int = 0
    nccl_port: int | None = None
    mem_fraction_static: float | None = None
    trust_remote_code: bool = False
    max_running_requests: int = DEFAULT_MAX_RUNNING_REQUESTS
    max_total_tokens: int | None = None
    max_prefill_tokens: int = 16384
    context_length: int = DEFAULT_CONTEXT_LENGTH
    log_level: str = "info"
    enable_metrics: bool = False
    seed: int = 0
    vocab_size: int = DEFAULT_VOCAB_SIZE
    max_lifetime_s: float | None = None
    kv_timeout_s: float = 30.0
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    unknown_args: tuple[str, ...] = ()
    ignored_args: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> SimConfig:
        """Parse a ``launch_server``-style command line (without the program name).

        Raises ``SystemExit`` (argparse's way) only for a *modelled* flag with a bad value,
        e.g. ``--port abc`` or ``--disaggregation-mode both``, as SGLang itself would.
        """
        argv = list(argv)
        ns, rest = _build_parser().parse_known_args(argv)
        ignored, unknown = _classify_leftovers(rest)
        max_running = (
            ns.sim_max_running_requests or ns.max_running_requests or DEFAULT_MAX_RUNNING_REQUESTS
        )
        seed = ns.sim_seed if ns.sim_seed is not None else (ns.random_seed or 0)
        return cls(
            model_path=ns.model_path,
            served_model_name=ns.served_model_name or ns.model_path,
            tokenizer_path=ns.tokenizer_path,
            host=ns.host,
            port=ns.port,
            tp_size=ns.tp_size,
            dp_size=ns.dp_size,
            ep_size=ns.ep_size,
            pp_size=ns.pp_size,
            disaggregation_mode=ns.disaggregation_mode,
            disaggregation_bootstrap_port=ns.disaggregation_bootstrap_port,
            disaggregation_transfer_backend=ns.disaggregation_transfer_backend,
            disaggregation_ib_device=ns.disaggregation_ib_device,
            dist_init_addr=ns.dist_init_addr,
            nnodes=ns.nnodes,
            node_rank=ns.node_rank,
            nccl_port=ns.nccl_port,
            mem_fraction_static=ns.mem_fraction_static,
            trust_remote_code=ns.trust_remote_code,
            max_running_requests=max_running,
            max_total_tokens=ns.max_total_tokens,
            max_prefill_tokens=ns.max_prefill_tokens,
            context_length=ns.context_length or DEFAULT_CONTEXT_LENGTH,
            log_level=ns.log_level,
            enable_metrics=ns.enable_metrics,
            seed=seed,
            vocab_size=ns.sim_vocab_size,
            max_lifetime_s=ns.sim_max_lifetime,
            kv_timeout_s=ns.sim_kv_timeout,
            latency=LatencyConfig(
                startup_delay_s=ns.sim_startup_delay,
                ttft_base_ms=ns.sim_ttft_base_ms,
                ttft_per_input_token_ms=ns.sim_ttft_per_token_ms,
                tpot_ms=ns.sim_tpot_ms,
            ),
            unknown_args=tuple(unknown),
            ignored_args=tuple(ignored),
            argv=tuple(argv),
        )

    @property
    def is_follower(self) -> bool:
        """A non-zero node rank of a multi-node worker: SGLang serves only a health endpoint there."""
        return self.node_rank >= 1

    @property
    def max_total_num_tokens(self) -> int:
        """The KV pool size reported to clients (the token-usage gauge divides by it)."""
        return self.max_total_tokens or self.max_running_requests * self.context_length

    def server_args(self) -> dict[str, Any]:
        """The SGLang ``ServerArgs`` view served by ``/server_info`` (field names as SGLang's)."""
        return {
            "model_path": self.model_path,
            "tokenizer_path": self.tokenizer_path or self.model_path,
            "served_model_name": self.served_model_name,
            "host": self.host,
            "port": self.port,
            "tp_size": self.tp_size,
            "dp_size": self.dp_size,
            "ep_size": self.ep_size,
            "pp_size": self.pp_size,
            "nnodes": self.nnodes,
            "node_rank": self.node_rank,
            "dist_init_addr": self.dist_init_addr,
            "nccl_port": self.nccl_port,
            "mem_fraction_static": self.mem_fraction_static,
            "trust_remote_code": self.trust_remote_code,
            "max_running_requests": self.max_running_requests,
            "max_total_tokens": self.max_total_tokens,
            "max_prefill_tokens": self.max_prefill_tokens,
            "context_length": self.context_length,
            "log_level": self.log_level,
            "enable_metrics": self.enable_metrics,
            "random_seed": self.seed,
            "load_balance_method": "round_robin",
            "disaggregation_mode": self.disaggregation_mode,
            "disaggregation_bootstrap_port": self.disaggregation_bootstrap_port,
            "disaggregation_transfer_backend": self.disaggregation_transfer_backend,
            "disaggregation_ib_device": self.disaggregation_ib_device,
            "skip_tokenizer_init": False,
            "stream_output": False,
            "page_size": 1,
        }

    def sim_settings(self) -> dict[str, Any]:
        """The ``--sim-*`` settings in effect, for ``/get_server_info``."""
        return {
            "seed": self.seed,
            "vocab_size": self.vocab_size,
            "max_lifetime_s": self.max_lifetime_s,
            "kv_timeout_s": self.kv_timeout_s,
            **asdict(self.latency),
        }


def _build_parser() -> argparse.ArgumentParser:
    """The modelled flags. ``allow_abbrev=False`` so ``--tp 2`` is reported, not read as ``--tp-size``."""
    p = argparse.ArgumentParser(
        prog="python -m engine.sim",
        description="Simulated SGLang server (launch_server flags plus --sim-* knobs).",
        allow_abbrev=False,
    )
    g = p.add_argument_group("SGLang launch_server flags the simulator models")
    g.add_argument("--model-path", "--model", dest="model_path", default="sim-model")
    g.add_argument("--served-model-name", default=None)
    g.add_argument("--tokenizer-path", default=None)
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, default=30000)
    g.add_argument("--tp-size", "--tensor-parallel-size", dest="tp_size", type=int, default=1)
    g.add_argument("--dp-size", "--data-parallel-size", dest="dp_size", type=int, default=1)
    g.add_argument("--ep-size", "--expert-parallel-size", dest="ep_size", type=int, default=1)
    g.add_argument("--pp-size", "--pipeline-parallel-size", dest="pp_size", type=int, default=1)
    g.add_argument("--disaggregation-mode", choices=["null", "prefill", "decode"], default="null")
    g.add_argument("--disaggregation-bootstrap-port", type=int, default=8998)
    g.add_argument(
        "--disaggregation-transfer-backend",
        choices=["mooncake", "nixl", "ascend", "fake", "mori"],
        default="mooncake",
    )
    g.add_argument("--disaggregation-ib-device", default=None)
    g.add_argument("--dist-init-addr", "--nccl-init-addr", dest="dist_init_addr", default=None)
    g.add_argument("--nnodes", type=int, default=1)
    g.add_argument("--node-rank", type=int, default=0)
    g.add_argument("--nccl-port", type=int, default=None)
    g.add_argument("--mem-fraction-static", type=float, default=None)
    g.add_argument("--trust-remote-code", action="store_true")
    g.add_argument("--max-running-requests", type=int, default=None)
    g.add_argument("--max-total-tokens", type=int, default=None)
    g.add_argument("--max-prefill-tokens", type=int, default=16384)
    g.add_argument("--context-length", type=int, default=None)
    g.add_argument("--log-level", default="info")
    g.add_argument("--enable-metrics", action="store_true")
    g.add_argument("--random-seed", type=int, default=None)

    s = p.add_argument_group("simulator knobs (not SGLang flags)")
    s.add_argument(
        "--sim-startup-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds before /health turns 200 (model loading)",
    )
    s.add_argument(
        "--sim-ttft-base-ms",
        type=float,
        default=2.0,
        metavar="MS",
        help="fixed part of the time to first token",
    )
    s.add_argument(
        "--sim-ttft-per-token-ms",
        type=float,
        default=0.01,
        metavar="MS",
        help="time to first token per input token",
    )
    s.add_argument(
        "--sim-tpot-ms",
        type=float,
        default=2.0,
        metavar="MS",
        help="time per output token after the first",
    )
    s.add_argument(
        "--sim-max-running-requests",
        type=int,
        default=None,
        metavar="N",
        help="concurrent requests; more wait in the queue "
        "(default: --max-running-requests, else 64)",
    )
    s.add_argument(
        "--sim-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the output words (default: --random-seed, else 0)",
    )
    s.add_argument(
        "--sim-vocab-size",
        type=int,
        default=DEFAULT_VOCAB_SIZE,
        metavar="N",
        help="output words are w0..w(N-1); match the tokenizer built by engine.sim.tokenizer",
    )
    s.add_argument(
        "--sim-max-lifetime",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit by itself after this long (so test servers never leak)",
    )
    s.add_argument(
        "--sim-kv-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="decode: how long to wait for the prefill to publish a room's KV",
    )
    return p


def _classify_leftovers(rest: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split what argparse did not consume into real-but-unmodelled SGLang flags and unknowns.

    Values stay attached to their flag (``["--attention-backend", "fa3"]`` is one entry,
    ``"--attention-backend fa3"``), so the report reads like the command line did.
    """
    ignored: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(rest):
        tok = rest[i]
        i += 1
        if not tok.startswith("--"):
            unknown.append(tok)  # a stray positional argument
            continue
        name, has_inline_value, _ = tok.partition("=")
        values: list[str] = []
        if name in BOOL_FLAGS or has_inline_value:
            pass
        elif name in VALUE_FLAGS:
            if i < len(rest):
                values.append(rest[i])
                i += 1
        else:
            # Multi-valued real flags and unknown flags: take values up to the next flag.
            while i < len(rest) and not rest[i].startswith("--"):
                values.append(rest[i])
                i += 1
        entry = " ".join([tok, *values])
        if name in BOOL_FLAGS or name in VALUE_FLAGS or name in MULTI_VALUE_FLAGS:
            ignored.append(entry)
        else:
            unknown.append(entry)
    return ignored, unknown
