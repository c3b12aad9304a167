"""One parser per benchmark tool, registered by the tool's name (``benchmark.tool``).

A parser turns the text of one result file into normalised :class:`Point` s:

* ``bench_serving``: sglang 0.5.x ``--output-file`` JSONL, one JSON object per run
  (``max_concurrency``, ``completed``, ``*_throughput``, ``mean/median/p99_<m>_ms``, ...).
* ``aiperf``: ``profile_export_aiperf.json``, one object of ``{avg, p50, p90, p99, ...}``
  blocks per metric (``time_to_first_token``, ``inter_token_latency``, ...), concurrency in
  ``input_config.loadgen.concurrency``.
* ``custom``: a custom command's JSON (one object, a list, or JSON lines) using the flat
  names of :meth:`Point.flat` (bench_serving's names), so a bench_serving line also parses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import ValidationError
from engine.results.schema import Latency, Point

Parser = Callable[[str], list[Point]]
PARSERS: dict[str, Parser] = {}


class ResultParseError(ValidationError):
    """A result file that is not what its tool writes."""


def register(name: str) -> Callable[[Parser], Parser]:
    def decorate(fn: Parser) -> Parser:
        PARSERS[name] = fn
        return fn

    return decorate


def parse(tool: str, text: str, *, source: str = "<result>") -> list[Point]:
    try:
        parser = PARSERS[tool]
    except KeyError:
        raise ResultParseError(f"{source}: no result parser for tool {tool!r} (known: {', '.join(sorted(PARSERS))})") from None
    try:
        return parser(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise ResultParseError(f"{source}: not a {tool} result ({type(exc).__name__}: {exc})") from None


def _json_objects(text: str) -> list[dict[str, Any]]:
    """One JSON document (object or list of objects), or JSON lines. bench_serving writes
    ``Infinity`` for ``request_rate inf``, which Python's json reads."""
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not all(isinstance(i, dict) for i in items):
        raise ValueError("expected JSON objects")
    return items


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number is not None else None


@register("bench_serving")
def parse_bench_serving(text: str) -> list[Point]:
    points = []
    for rec in _json_objects(text):
        if "completed" not in rec or "max_concurrency" not in rec:
            raise KeyError("completed/max_concurrency")

        def lat(name: str, r: Mapping[str, Any] = rec) -> Latency:
            return Latency(*(_num(r.get(f"{stat}_{name}_ms")) for stat in ("mean", "median", "p90", "p99")))

        points.append(Point(
            concurrency=int(rec["max_concurrency"]),
            completed=_int(rec["completed"]),
            duration_s=_num(rec.get("duration")),
            input_tokens=_int(rec.get("total_input_tokens")),
            output_tokens=_int(rec.get("total_output_tokens")),
            request_throughput=_num(rec.get("request_throughput")),
            input_throughput=_num(rec.get("input_throughput")),
            output_throughput=_num(rec.get("output_throughput")),
            total_throughput=_num(rec.get("total_throughput", rec.get("total_token_throughput"))),
            ttft=lat("ttft"), tpot=lat("tpot"), itl=lat("itl"), e2e=lat("e2e_latency"),
        ))
    return points


@register("aiperf")
def parse_aiperf(text: str) -> list[Point]:
    points = []
    for rec in _json_objects(text):
        if "request_count" not in rec:
            raise KeyError("request_count")

        def block(name: str, stat: str = "avg", r: Mapping[str, Any] = rec) -> float | None:
            value = r.get(name)
            return _num(value.get(stat)) if isinstance(value, Mapping) else None

        def lat(name: str) -> Latency:
            return Latency(block(name, "avg"), block(name, "p50"), block(name, "p90"), block(name, "p99"))

        loadgen = rec.get("input_config", {}).get("loadgen", {})
        completed = _int(block("request_count"))
        errors = _int(block("error_request_count")) if isinstance(rec.get("error_request_count"), Mapping) else 0
        points.append(Point(
            concurrency=int(loadgen.get("concurrency") or 0),
            requested=(completed or 0) + (errors or 0) if completed is not None else None,
            completed=completed,
            failed=errors,
            duration_s=block("benchmark_duration"),
            input_tokens=_int(block("total_isl")),
            output_tokens=_int(block("total_osl")),
            request_throughput=block("request_throughput"),
            output_throughput=block("output_token_throughput"),
            # aiperf's inter_token_latency is bench_serving's TPOT (per request, excluding
            # the first token); it reports no separate per-chunk ITL
            ttft=lat("time_to_first_token"),
            tpot=lat("inter_token_latency"),
            e2e=lat("request_latency"),
        ))
    return points


@register("custom")
def parse_custom(text: str) -> list[Point]:
    points = []
    for rec in _json_objects(text):
        if "concurrency" not in rec and "max_concurrency" not in rec:
            raise KeyError("concurrency")
        points.append(Point.from_flat(rec))
    return points
