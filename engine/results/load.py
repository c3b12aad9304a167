"""Read run records (and sweep records) into :class:`RunResult` s.

A run's ``results/summary.json`` (written by the benchmark role) names the tool, the model,
ISL/OSL, the requests of each concurrency and the deployment; the per-concurrency files
(``bench_c<C>.jsonl``, ``aiperf_c<C>.json``, a custom command's ``bench_c<C>.jsonl``) are
parsed by the tool's parser. A sweep point's ``sweep_point.json`` adds its parameters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.errors import ValidationError
from engine.results.parsers import parse
from engine.results.schema import Deployment, Point, RunResult
from engine.runs import RunRecord

RESULT_FILES = {"bench_serving": "bench_c{c}.jsonl", "aiperf": "aiperf_c{c}.json", "custom": "bench_c{c}.jsonl"}
_CONCURRENCY = re.compile(r"_c(\d+)\.json")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_run(run: str | Path) -> RunResult:
    record = RunRecord.open(str(run))
    results = record.path / "results"
    summary = _read_json(results / "summary.json") or {}
    point_info = _read_json(record.path / "sweep_point.json") or {}
    tool = str(summary.get("tool") or ("aiperf" if any(results.glob("aiperf_c*.json")) else "bench_serving"))
    dep = summary.get("deployment") or {}
    deployment = Deployment.from_layout(
        dep.get("layout") if isinstance(dep, dict) else None,
        nodes=_int(dep.get("nodes")) if isinstance(dep, dict) else None,
        params=point_info.get("params") or {},
    )
    requested = {int(r["concurrency"]): r.get("num_prompts") for r in summary.get("runs", []) if isinstance(r, dict) and "concurrency" in r}
    concurrencies = list(requested) or sorted(
        int(m.group(1)) for f in results.glob("*_c*.json*") if not f.name.startswith("warmup") and (m := _CONCURRENCY.search(f.name))
    )
    points: list[Point] = []
    for c in concurrencies:
        path = results / RESULT_FILES.get(tool, "bench_c{c}.jsonl").format(c=c)
        if not path.exists():
            continue
        parsed = parse(tool, path.read_text(encoding="utf-8"), source=str(path))
        if not parsed:
            continue
        point = parsed[-1]  # bench_serving appends: the last line is this run
        if point.concurrency == 0:
            point = Point(**{**point.__dict__, "concurrency": c})
        point = point.with_requested(_int(requested.get(c)) if requested.get(c) is not None else point.requested)
        points.append(_with_source(point.with_deployment(deployment), path))
    return RunResult(
        run_id=record.id,
        name=str(point_info.get("name") or record.id),
        tool=tool,
        deployment=deployment,
        points=tuple(sorted(points, key=lambda p: p.concurrency)),
        model=summary.get("model"),
        isl=_int(summary.get("isl")),
        osl=_int(summary.get("osl")),
        status=record.status,
        path=str(record.path),
    )


def _with_source(point: Point, path: Path) -> Point:
    from dataclasses import replace

    return replace(point, source=str(path))


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def resolve(targets: list[str]) -> tuple[list[RunResult], Path | None]:
    """Runs named by ids, paths or sweep ids; with one sweep, also its directory (where the
    report's files go by default)."""
    from engine.sweep import SweepRecord

    runs: list[RunResult] = []
    sweep_dir: Path | None = None
    for target in targets:
        sweep = SweepRecord.find(target)
        if sweep is not None:
            sweep_dir = sweep.path if sweep_dir is None and len(targets) == 1 else sweep_dir
            ids = [p["run_id"] for p in sweep.points if p.get("run_id")]
            if not ids:
                raise ValidationError(f"sweep {sweep.id} has no run with results yet")
            runs += [load_run(str(sweep.path.parent / i)) for i in ids]
        else:
            runs.append(load_run(target))
    return runs, sweep_dir
