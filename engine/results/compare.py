"""Tables of results: one per run, and a comparison across runs at each concurrency
(the first run is the baseline: deltas are relative to it; the better value is marked)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engine.results.schema import RunResult

Better = Literal["higher", "lower"]
BEST = "★"


@dataclass(frozen=True)
class Metric:
    key: str  # a key of Point.flat()
    label: str
    better: Better | None
    fmt: str = "{:.2f}"


#: The per-run table's columns.
COLUMNS = (
    Metric("concurrency", "conc", None, "{:d}"),
    Metric("requested", "requests", None, "{:d}"),
    Metric("completed", "completed", "higher", "{:d}"),
    Metric("failed", "failed", "lower", "{:d}"),
    Metric("request_throughput", "req/s", "higher"),
    Metric("output_throughput", "out tok/s", "higher", "{:.1f}"),
    Metric("output_throughput_per_gpu", "out tok/s/GPU", "higher", "{:.1f}"),
    Metric("total_throughput_per_gpu", "tok/s/GPU", "higher", "{:.1f}"),
    Metric("tokens_per_s_per_user", "tok/s/user", "higher", "{:.1f}"),
    Metric("mean_ttft_ms", "mean TTFT ms", "lower"),
    Metric("p99_ttft_ms", "p99 TTFT ms", "lower"),
    Metric("mean_tpot_ms", "mean TPOT ms", "lower"),
    Metric("p99_tpot_ms", "p99 TPOT ms", "lower"),
    Metric("mean_itl_ms", "mean ITL ms", "lower"),
    Metric("p99_e2e_latency_ms", "p99 E2E ms", "lower"),
)
#: What the comparison compares.
COMPARED = tuple(m for m in COLUMNS if m.better is not None and m.key not in ("completed",))


@dataclass(frozen=True)
class ComparisonRow:
    concurrency: int
    metric: Metric
    values: tuple[float | None, ...]  # one per run, in the runs' order
    deltas: tuple[float | None, ...]  # percent vs the first run
    best: int | None  # index of the better run (None: a tie or nothing to compare)


def fmt_value(metric: Metric, value: Any) -> str:
    if value is None:
        return "-"
    try:
        return metric.fmt.format(int(value) if metric.fmt == "{:d}" else value)
    except (TypeError, ValueError):
        return str(value)


def compare(runs: Sequence[RunResult]) -> list[ComparisonRow]:
    """For each concurrency measured by two or more runs, every compared metric."""
    if len(runs) < 2:
        return []
    by_run = [{p.concurrency: p.flat() for p in r.points} for r in runs]
    concurrencies = sorted({c for m in by_run for c in m if sum(c in other for other in by_run) >= 2})
    rows = []
    for c in concurrencies:
        for metric in COMPARED:
            values = tuple(m[c].get(metric.key) if c in m else None for m in by_run)
            base = values[0]
            deltas = tuple(
                (v - base) / base * 100.0 if v is not None and base not in (None, 0) else None for v in values
            )
            rows.append(ComparisonRow(c, metric, values, deltas, _best(values, metric.better)))
    return rows


def _best(values: Sequence[float | None], better: Better | None) -> int | None:
    known = [(v, i) for i, v in enumerate(values) if v is not None]
    if len(known) < 2 or better is None:
        return None
    pick = max(known) if better == "higher" else min(known)
    if sum(1 for v, _ in known if v == pick[0]) > 1:
        return None
    return pick[1]


def _cell(row: ComparisonRow, i: int, *, mark: str) -> str:
    text = fmt_value(row.metric, row.values[i])
    if i > 0 and row.deltas[i] is not None:
        text += f" ({row.deltas[i]:+.1f}%)"
    if row.best == i:
        text = mark.format(text)
    return text


def run_header(run: RunResult) -> str:
    d = run.deployment
    parts = [f"run {run.name}", f"tool {run.tool}"]
    if run.model:
        parts.append(f"model {run.model}")
    if run.isl is not None:
        parts.append(f"isl {run.isl} osl {run.osl}")
    if d.gpus:
        parts.append(f"{d.gpus} GPUs ({d.decode_gpus} decode)")
    if d.nodes:
        parts.append(f"{d.nodes} nodes")
    if run.status:
        parts.append(f"status {run.status}")
    return ", ".join(parts)


# -- renderers -------------------------------------------------------------------------
def render_text(runs: Sequence[RunResult], console: Any) -> None:
    """Rich tables on ``console``: one per run, then the comparison."""
    from rich.table import Table

    for run in runs:
        table = Table(title=run_header(run), title_justify="left")
        for m in COLUMNS:
            table.add_column(m.label, justify="right")
        for p in run.points:
            flat = p.flat()
            table.add_row(*(fmt_value(m, flat.get(m.key)) for m in COLUMNS))
        console.print(table)
    rows = compare(runs)
    if not rows:
        return
    table = Table(title=f"comparison ({BEST} better; deltas vs {runs[0].name})", title_justify="left")
    table.add_column("conc", justify="right")
    table.add_column("metric")
    for run in runs:
        table.add_column(run.name, justify="right")
    for row in rows:
        table.add_row(str(row.concurrency), row.metric.label, *(_cell(row, i, mark="[bold green]{} " + BEST + "[/]") for i in range(len(runs))))
    console.print(table)


def render_markdown(runs: Sequence[RunResult]) -> str:
    out: list[str] = []
    for run in runs:
        out += [f"### {run_header(run)}", "", "| " + " | ".join(m.label for m in COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
        for p in run.points:
            flat = p.flat()
            out.append("| " + " | ".join(fmt_value(m, flat.get(m.key)) for m in COLUMNS) + " |")
        out.append("")
    rows = compare(runs)
    if rows:
        out += [f"### comparison ({BEST} better; deltas vs {runs[0].name})", ""]
        out.append("| conc | metric | " + " | ".join(r.name for r in runs) + " |")
        out.append("|---:|---|" + "---:|" * len(runs))
        for row in rows:
            out.append(f"| {row.concurrency} | {row.metric.label} | " + " | ".join(_cell(row, i, mark="**{} " + BEST + "**") for i in range(len(runs))) + " |")
        out.append("")
    return "\n".join(out)


def point_rows(runs: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One flat row per (run, point), with the run, its parameters and the deltas of the
    compared metrics vs the first run at the same concurrency."""
    base = {p.concurrency: p.flat() for p in runs[0].points} if runs else {}
    rows = []
    for run in runs:
        for p in run.points:
            flat = p.flat()
            row: dict[str, Any] = {"run": run.name, "run_id": run.run_id, "tool": run.tool}
            row.update({f"param:{k}": v for k, v in run.deployment.params.items()})
            row.update({"gpus": run.deployment.gpus, "decode_gpus": run.deployment.decode_gpus, "nodes": run.deployment.nodes})
            row.update(flat)
            ref = base.get(p.concurrency, {})
            for m in COMPARED:
                v, b = flat.get(m.key), ref.get(m.key)
                row[f"{m.key}_delta_pct"] = (v - b) / b * 100.0 if v is not None and b not in (None, 0) else None
            rows.append(row)
    return rows


def render_csv(runs: Sequence[RunResult]) -> str:
    rows = point_rows(runs)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def render_json(runs: Sequence[RunResult]) -> str:
    comparison = [
        {"concurrency": r.concurrency, "metric": r.metric.key, "better": r.metric.better, "values": list(r.values),
         "deltas_pct": list(r.deltas), "best": runs[r.best].name if r.best is not None else None}
        for r in compare(runs)
    ]
    return json.dumps({"runs": [r.to_dict() for r in runs], "comparison": comparison}, indent=2, default=str)
