"""PNG figures of results (matplotlib, Agg; no pyplot state, so safe to call anywhere).

* ``pareto.png``: output throughput per GPU against interactivity (tokens/s per user =
  1000 / mean TPOT), one line per run over its concurrencies, the Pareto frontier of all
  points marked (InferenceX's convention: output tokens/s over the decode GPUs).
* ``ttft_vs_concurrency.png``, ``tpot_vs_concurrency.png``: one line per run.

Each figure is described from the same Figure object (axis labels, title, every line's
label and data, the pixel size) in ``figures.json`` beside the PNGs, so tests and tools can
check what was drawn without reading pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.results.schema import Point, RunResult

DPI = 100
SIZE_IN = (8.0, 5.0)


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (both higher is better), by x."""
    frontier: list[tuple[float, float]] = []
    for x, y in sorted(set(points), key=lambda p: (-p[0], -p[1])):
        if not frontier or y > frontier[-1][1]:
            frontier.append((x, y))
    return sorted(frontier)


def _series(run: RunResult, x: str, y: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for p in sorted(run.points, key=lambda p: p.concurrency):
        xv, yv = _get(p, x), _get(p, y)
        if xv is not None and yv is not None:
            xs.append(float(xv))
            ys.append(float(yv))
    return xs, ys


def _get(point: Point, key: str) -> float | None:
    value = point.flat().get(key)
    return float(value) if isinstance(value, int | float) else None


def _new_figure(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def pareto_figure(runs: Sequence[RunResult]) -> Any:
    per_gpu = all(p.output_throughput_per_gpu is not None for r in runs for p in r.points)
    y_key = "output_throughput_per_gpu" if per_gpu else "output_throughput"
    ylabel = "output tokens/s per GPU" if per_gpu else "output tokens/s (GPU count unknown)"
    fig, ax = _new_figure("Throughput vs interactivity", "tokens/s per user (1000 / mean TPOT ms)", ylabel)
    everything: list[tuple[float, float]] = []
    for run in runs:
        xs, ys = _series(run, "tokens_per_s_per_user", y_key)
        ax.plot(xs, ys, marker="o", label=run.name, gid="run")
        everything += list(zip(xs, ys, strict=True))
    frontier = pareto_frontier(everything)
    if frontier:
        fx, fy = zip(*frontier, strict=True)
        ax.plot(fx, fy, linestyle="--", color="black", marker="*", markersize=12, label="Pareto frontier", gid="frontier")
    ax.legend(fontsize="small")
    return fig


def versus_concurrency(runs: Sequence[RunResult], key: str, what: str) -> Any:
    fig, ax = _new_figure(f"{what} vs concurrency", "concurrency (max concurrent requests)", f"mean {what} (ms)")
    concurrencies: set[int] = set()
    for run in runs:
        xs, ys = _series(run, "concurrency", key)
        ax.plot(xs, ys, marker="o", label=run.name, gid="run")
        concurrencies.update(int(x) for x in xs)
    if concurrencies and max(concurrencies) >= 4 * max(1, min(concurrencies)):
        ax.set_xscale("log", base=2)
    ax.legend(fontsize="small")
    return fig


def figures(runs: Sequence[RunResult]) -> dict[str, Any]:
    return {
        "pareto.png": pareto_figure(runs),
        "ttft_vs_concurrency.png": versus_concurrency(runs, "mean_ttft_ms", "TTFT"),
        "tpot_vs_concurrency.png": versus_concurrency(runs, "mean_tpot_ms", "TPOT"),
    }


def describe(fig: Any) -> dict[str, Any]:
    """What a Figure draws: per axes its title, labels and lines (label, kind, data)."""
    width, height = (round(float(v) * fig.dpi) for v in fig.get_size_inches())
    axes = []
    for ax in fig.get_axes():
        axes.append({
            "title": ax.get_title(),
            "xlabel": ax.get_xlabel(),
            "ylabel": ax.get_ylabel(),
            "xscale": ax.get_xscale(),
            "lines": [
                {"label": line.get_label(), "kind": line.get_gid(), "x": [float(v) for v in line.get_xdata()], "y": [float(v) for v in line.get_ydata()]}
                for line in ax.get_lines()
            ],
        })
    return {"size_px": [width, height], "axes": axes}


def write_figures(runs: Sequence[RunResult], directory: Path) -> dict[str, dict[str, Any]]:
    """Write every figure as PNG into ``directory``; returns {file name: description}."""
    directory.mkdir(parents=True, exist_ok=True)
    described = {}
    for name, fig in figures(runs).items():
        fig.savefig(directory / name, format="png", dpi=DPI)
        described[name] = describe(fig)
    return described
