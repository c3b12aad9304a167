"""Parsers on real bench_serving 0.5.9 output (fixtures/bench_c*.jsonl: written by the real
bench_serving against engine.sim, isl 32, osl 8, 4 and 10 prompts), comparison and the
figures read back from figures.json and the PNG header."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from engine.results.compare import compare, render_csv, render_markdown
from engine.results.parsers import ResultParseError, parse
from engine.results.plots import pareto_frontier
from engine.results.report_files import write_report
from engine.results.schema import Deployment, RunResult

FIXTURES = Path(__file__).parent / "fixtures"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def run(name: str, workers: int) -> RunResult:
    dep = Deployment.from_layout({"prefill": {"workers": 1, "tp": "1"}, "decode": {"workers": str(workers), "tp": 8}}, nodes=2, params={"layout.decode.workers": str(workers)})
    points = [parse("bench_serving", (FIXTURES / f"bench_c{c}.jsonl").read_text())[-1].with_requested(n).with_deployment(dep) for c, n in ((1, 4), (4, 10))]
    return RunResult(name, name, "bench_serving", dep, tuple(points))


def test_bench_serving_fields_are_normalised() -> None:
    raw = json.loads((FIXTURES / "bench_c4.jsonl").read_text())
    [p] = parse("bench_serving", (FIXTURES / "bench_c4.jsonl").read_text())
    assert (p.concurrency, p.completed, p.input_tokens, p.output_tokens) == (4, 10, 320, 80)
    assert p.ttft.mean == raw["mean_ttft_ms"] and p.tpot.p99 == raw["p99_tpot_ms"] and p.e2e.p90 == raw["p90_e2e_latency_ms"]
    assert p.ttft.p90 is None  # bench_serving 0.5.9 reports no p90 TTFT
    dep = Deployment.from_layout({"prefill": {"workers": 1, "tp": 1}, "decode": {"workers": 2, "tp": 8}}, nodes=3)
    assert (dep.gpus, dep.decode_gpus) == (17, 16)
    q = p.with_requested(12).with_deployment(dep)
    assert q.failed == 2 and q.problem() == "2 of 12 requests failed (0 allowed)"
    assert q.output_throughput_per_gpu == pytest.approx(raw["output_throughput"] / 16)
    assert q.output_throughput_per_node == pytest.approx(raw["output_throughput"] / 3)


def test_aiperf_and_custom() -> None:
    # shaped from aiperf's documented profile_export_aiperf.json (aiperf is not installed here)
    doc = {"request_count": {"avg": 8.0}, "error_request_count": {"avg": 1.0}, "request_throughput": {"avg": 3.0},
           "output_token_throughput": {"avg": 90.0}, "time_to_first_token": {"avg": 5.0, "p50": 4.0, "p90": 7.0, "p99": 9.0},
           "inter_token_latency": {"avg": 2.0, "p99": 3.0}, "total_osl": {"avg": 240.0}, "input_config": {"loadgen": {"concurrency": 4}}}
    [p] = parse("aiperf", json.dumps(doc))
    assert (p.concurrency, p.completed, p.failed, p.requested, p.ttft.p90, p.tpot.mean) == (4, 8, 1, 9, 7.0, 2.0)
    [c] = parse("custom", '{"concurrency": 2, "completed": 3, "output_tokens": 9, "mean_ttft_ms": 1.5}')
    assert (c.concurrency, c.ttft.mean, c.problem()) == (2, 1.5, None)
    with pytest.raises(ResultParseError, match="not a bench_serving result"):
        parse("bench_serving", '{"x": 1}')
    with pytest.raises(ResultParseError, match="no result parser for tool 'locust'"):
        parse("locust", "{}")


def test_comparison_marks_the_better_value_and_figures_show_one_line_per_run(tmp_path: Path) -> None:
    runs = [run("one", 1), run("two", 2)]
    rows = {(r.concurrency, r.metric.key): r for r in compare(runs)}
    per_gpu = rows[(4, "output_throughput_per_gpu")]
    assert per_gpu.best == 0 and per_gpu.deltas[1] == pytest.approx(-50.0)
    assert "**" in render_markdown(runs) and render_csv(runs).count("\n") == 5
    assert pareto_frontier([(1, 5), (2, 4), (1.5, 3), (3, 1)]) == [(1, 5), (2, 4), (3, 1)]
    files = write_report(runs, tmp_path, title="t")
    figs = json.loads((tmp_path / "figures.json").read_text())
    for name in ("pareto.png", "ttft_vs_concurrency.png", "tpot_vs_concurrency.png"):
        assert png_size(tmp_path / name) == tuple(figs[name]["size_px"]) and (tmp_path / name).stat().st_size > 5000
        [ax] = figs[name]["axes"]
        assert [line["label"] for line in ax["lines"] if line["kind"] == "run"] == ["one", "two"]
    pareto = figs["pareto.png"]["axes"][0]
    assert pareto["xlabel"].startswith("tokens/s per user") and pareto["ylabel"] == "output tokens/s per GPU"
    assert pareto["lines"][0]["y"] == [p.output_throughput_per_gpu for p in runs[0].points]
    ttft = figs["ttft_vs_concurrency.png"]["axes"][0]
    assert ttft["lines"][1]["x"] == [1.0, 4.0] and ttft["lines"][1]["y"] == [p.ttft.mean for p in runs[1].points]
    assert tmp_path / "report.html" in files
