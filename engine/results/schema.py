"""The normalised result schema: one :class:`Point` per benchmark run at one concurrency,
grouped into a :class:`RunResult` with the :class:`Deployment` that served it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

LATENCIES = ("ttft", "tpot", "itl", "e2e")
STATS = ("mean", "median", "p90", "p99")
#: Flat names, bench_serving's: ``mean_ttft_ms`` ... ``p99_e2e_latency_ms``.
FLAT = {"ttft": "ttft", "tpot": "tpot", "itl": "itl", "e2e": "e2e_latency"}


@dataclass(frozen=True)
class Latency:
    """One latency distribution in milliseconds; a statistic the tool did not report is None
    (bench_serving 0.5.9 reports p90 only for E2E latency)."""

    mean: float | None = None
    median: float | None = None
    p90: float | None = None
    p99: float | None = None


@dataclass(frozen=True)
class Deployment:
    """What served the load: the parameters a sweep varied and the GPUs/nodes they used."""

    params: Mapping[str, str] = field(default_factory=dict)
    layout: Mapping[str, Any] = field(default_factory=dict)
    gpus: int | None = None
    decode_gpus: int | None = None
    nodes: int | None = None

    @classmethod
    def from_layout(cls, layout: Mapping[str, Any] | None, *, nodes: int | None = None, params: Mapping[str, str] | None = None) -> Deployment:
        """GPUs from a serving layout (``{prefill: {workers, tp}, decode: {...}}`` or
        ``{workers: {workers, tp}}``); values from ``-e`` arrive as strings."""
        layout = dict(layout or {})
        per_group: dict[str, int] = {}
        for group, spec in layout.items():
            if isinstance(spec, Mapping) and "tp" in spec:
                try:
                    per_group[str(group)] = int(spec.get("workers", 1)) * int(spec["tp"])
                except (TypeError, ValueError):
                    continue
        gpus = sum(per_group.values()) or None
        decode = per_group.get("decode", per_group.get("workers")) or gpus
        return cls(dict(params or {}), layout, gpus, decode, nodes or None)


@dataclass(frozen=True)
class Point:
    """One measured run at one concurrency, normalised."""

    concurrency: int
    requested: int | None = None
    completed: int | None = None
    failed: int | None = None
    duration_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    request_throughput: float | None = None
    input_throughput: float | None = None
    output_throughput: float | None = None
    total_throughput: float | None = None
    ttft: Latency = field(default_factory=Latency)
    tpot: Latency = field(default_factory=Latency)
    itl: Latency = field(default_factory=Latency)
    e2e: Latency = field(default_factory=Latency)
    # filled from the deployment (Point.with_deployment)
    output_throughput_per_gpu: float | None = None
    total_throughput_per_gpu: float | None = None
    output_throughput_per_node: float | None = None
    source: str | None = None

    @property
    def tokens_per_s_per_user(self) -> float | None:
        """Interactivity: 1000 / mean TPOT (ms)."""
        return 1000.0 / self.tpot.mean if self.tpot.mean else None

    def with_deployment(self, deployment: Deployment) -> Point:
        """Per-GPU figures as InferenceX defines them: output tokens/s over decode GPUs,
        total tokens/s over all GPUs; per node over the deployment's nodes."""
        def per(value: float | None, n: int | None) -> float | None:
            return value / n if value is not None and n else None

        total = self.total_throughput
        if total is None and self.output_throughput is not None and self.input_throughput is not None:
            total = self.output_throughput + self.input_throughput
        return replace(
            self,
            total_throughput=total,
            output_throughput_per_gpu=per(self.output_throughput, deployment.decode_gpus),
            total_throughput_per_gpu=per(total, deployment.gpus),
            output_throughput_per_node=per(self.output_throughput, deployment.nodes),
        )

    def with_requested(self, requested: int | None) -> Point:
        if requested is None:
            return self
        failed = requested - self.completed if self.completed is not None else self.failed
        return replace(self, requested=requested, failed=failed)

    def problem(self, max_failed: int = 0) -> str | None:
        """Why this point is not a valid measurement (None when it is)."""
        if self.failed is not None and self.failed > max_failed:
            return f"{self.failed} of {self.requested if self.requested is not None else '?'} requests failed ({max_failed} allowed)"
        if not self.output_tokens:
            return "no output tokens"
        return None

    def flat(self) -> dict[str, Any]:
        """One flat row: latencies as ``<stat>_<metric>_ms`` (bench_serving's names)."""
        row: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key in LATENCIES:
                for stat in STATS:
                    row[f"{stat}_{FLAT[key]}_ms"] = value[stat]
            else:
                row[key] = value
        row["tokens_per_s_per_user"] = self.tokens_per_s_per_user
        return row

    @classmethod
    def from_flat(cls, row: Mapping[str, Any]) -> Point:
        """The inverse of :meth:`flat`; also what a custom command's JSON may hold."""
        def latency(name: str) -> Latency:
            return Latency(**{stat: _num(row.get(f"{stat}_{FLAT[name]}_ms")) for stat in STATS})

        known = {f for f in cls.__dataclass_fields__ if f not in LATENCIES}
        values: dict[str, Any] = {k: row[k] for k in known if k in row}
        values["concurrency"] = int(row.get("max_concurrency", row.get("concurrency", 0)) or 0)
        return cls(**values, ttft=latency("ttft"), tpot=latency("tpot"), itl=latency("itl"), e2e=latency("e2e"))


@dataclass(frozen=True)
class RunResult:
    """Every point of one run record, with what produced them."""

    run_id: str
    name: str
    tool: str
    deployment: Deployment
    points: tuple[Point, ...]
    model: str | None = None
    isl: int | None = None
    osl: int | None = None
    status: str | None = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["points"] = [p.flat() for p in self.points]
        return data


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
