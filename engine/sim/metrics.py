"""SGLang-style Prometheus metrics, rendered by hand (no prometheus_client dependency).

Names, types and histogram buckets follow ``sglang/srt/metrics/collector.py`` of 0.5.9 so that
scrape configs, dashboards and the telemetry roles can be tested against the simulator. Metrics
whose name starts with ``sglang:sim_`` exist only here: they make the simulated P/D handshake
observable (``sglang:sim_kv_transfers_total`` counts KV fetched from a prefill's bootstrap server).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

TTFT_BUCKETS = (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400)
E2E_BUCKETS = (*TTFT_BUCKETS, 600, 1200, 1800, 2400)
ITL_BUCKETS = (
    0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040,
    0.060, 0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.0, 2.0, 4.0, 6.0, 8.0,
)  # fmt: skip


@dataclass
class Histogram:
    """A cumulative Prometheus histogram."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        idx = bisect.bisect_left(self.buckets, value)
        if idx < len(self.counts):
            self.counts[idx] += 1
        self.total += value
        self.n += 1

    def render(self, name: str, labels: str) -> list[str]:
        lines = []
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{{labels},le="{float(bound)}"}} {cumulative}')
        lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.n}')
        lines.append(f"{name}_sum{{{labels}}} {self.total}")
        lines.append(f"{name}_count{{{labels}}} {self.n}")
        return lines


# (name, help) of each counter; the value lives in Metrics.counters under the short key.
_COUNTERS: dict[str, tuple[str, str]] = {
    "prompt_tokens": ("sglang:prompt_tokens_total", "Number of prefill tokens processed."),
    "generation_tokens": (
        "sglang:generation_tokens_total",
        "Number of generation tokens processed.",
    ),
    "requests": ("sglang:num_requests_total", "Number of requests processed."),
    "aborted_requests": ("sglang:num_aborted_requests_total", "Number of requests aborted."),
    "bootstrap_failed": (
        "sglang:num_bootstrap_failed_reqs_total",
        "Number of decode requests whose KV bootstrap failed.",
    ),
    "kv_transfers": (
        "sglang:sim_kv_transfers_total",
        "Decode: KV records fetched from a prefill's bootstrap server.",
    ),
    "kv_published": (
        "sglang:sim_kv_published_total",
        "Prefill: KV records published on this server's bootstrap server.",
    ),
    "kv_fake_transfers": (
        "sglang:sim_kv_fake_transfers_total",
        "Requests with SGLang's fake bootstrap host (health checks): no transfer.",
    ),
    "bootstrap_port_mismatches": (
        "sglang:sim_bootstrap_port_mismatches_total",
        "Prefill: requests naming a bootstrap port other than the one this server listens on.",
    ),
}

_SCHEDULER_COUNTERS = frozenset(
    {
        "bootstrap_failed",
        "kv_transfers",
        "kv_published",
        "kv_fake_transfers",
        "bootstrap_port_mismatches",
    }
)


@dataclass
class Metrics:
    """Counters and histograms of one server; gauges are read live when rendering."""

    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(E2E_BUCKETS))
    itl: Histogram = field(default_factory=lambda: Histogram(ITL_BUCKETS))

    def inc(self, key: str, by: int = 1) -> None:
        self.counters[key] += by

    def render(
        self,
        tokenizer_labels: dict[str, str],
        scheduler_labels: dict[str, str],
        gauges: dict[str, float],
    ) -> str:
        """The Prometheus text exposition. ``gauges`` maps full metric names to values.

        As in SGLang, request metrics carry the tokenizer's labels (``model_name``) and
        scheduler metrics (gauges, KV hand-off counters) the scheduler's (``model_name``,
        ``engine_type``, ranks).
        """
        tok = _labels(tokenizer_labels)
        sched = _labels(scheduler_labels)
        lines: list[str] = []
        for name, value in gauges.items():
            lines += [f"# HELP {name} {name.split(':', 1)[1]}", f"# TYPE {name} gauge"]
            lines.append(f"{name}{{{sched}}} {float(value)}")
        for key, (name, help_text) in _COUNTERS.items():
            lab = sched if key in _SCHEDULER_COUNTERS else tok
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines.append(f"{name}{{{lab}}} {float(self.counters[key])}")
        for name, hist, help_text in (
            ("sglang:time_to_first_token_seconds", self.ttft, "Histogram of time to first token."),
            ("sglang:e2e_request_latency_seconds", self.e2e, "Histogram of end-to-end latency."),
            ("sglang:inter_token_latency_seconds", self.itl, "Histogram of inter-token latency."),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
            lines += hist.render(name, tok)
        return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
