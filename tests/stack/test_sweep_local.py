"""A 2x2 deployment sweep of playbooks/llama70b.yaml on the embedded default (local
scheduler, simulated workers, real router, real bench_serving; telemetry and OpenTela off,
one concurrency, two prompts): four ok points, then ``smlplay report SWEEP --html
--format json``, the figures it wrote, ``smlplay down SWEEP`` and no process left."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.results.test_results import png_size
from tests.stack.stack import PLAYBOOK, env_for, free_ports

AXES = {"layout.decode.workers": ["1", "2"], "layout.prefill.tp": ["1", "2"]}


def smlplay(workdir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=workdir, env=env_for(workdir), capture_output=True, text=True, timeout=timeout)


def leftovers(markers: list[str]) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines()[1:] if any(m in line for m in markers) and "ps -eo" not in line]


def test_two_by_two_sweep_reports_and_leaves_nothing(tmp_path: Path) -> None:
    router, metrics, prefill, decode, bootstrap = free_ports(5)
    overrides = {
        "router_port": router,
        "router_metrics_port": metrics,
        "prefill_port_base": prefill,
        "decode_port_base": decode,
        "prefill_bootstrap_port_base": bootstrap,
        "benchmark": {"concurrencies": [1], "isl": 16, "osl": 4, "prompts_per_concurrency": 2, "min_prompts": 2, "warmup": False},
        "telemetry": False,
        "opentela": False,
    }
    sweeps = [arg for path, values in AXES.items() for arg in ("--sweep", f"{path}={','.join(values)}")]
    started = time.monotonic()
    proc = smlplay(tmp_path, "run", str(PLAYBOOK), "-e", json.dumps(overrides), *sweeps)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    [sweep_dir] = [d for d in (tmp_path / "runs").iterdir() if (d / "sweep.json").is_file()]
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    assert sweep["status"] == "ok" and sweep["axes"] == AXES
    points = sweep["points"]
    assert [p["state"] for p in points] == ["ok"] * 4, points
    assert [p["params"] for p in points] == [
        {"layout.decode.workers": w, "layout.prefill.tp": tp} for w in AXES["layout.decode.workers"] for tp in AXES["layout.prefill.tp"]
    ]
    run_dirs = [tmp_path / "runs" / p["run_id"] for p in points]
    for run_dir in run_dirs:
        assert json.loads((run_dir / "sweep_point.json").read_text())["sweep_id"] == sweep_dir.name

    report = smlplay(tmp_path, "report", sweep_dir.name, "--html", "--format", "json")
    assert report.returncode == 0, report.stdout + report.stderr
    printed = json.loads(report.stdout)
    assert len(printed["runs"]) == 4 and printed["comparison"], printed
    for row in printed["comparison"]:
        assert row["concurrency"] == 1 and len(row["values"]) == len(row["deltas_pct"]) == 4, row
        assert row["deltas_pct"][0] in (None, 0, 0.0), row
    figs = json.loads((sweep_dir / "report" / "figures.json").read_text())
    assert set(figs) == {"pareto.png", "ttft_vs_concurrency.png", "tpot_vs_concurrency.png"}
    for name, fig in figs.items():
        width, height = png_size(sweep_dir / "report" / name)
        assert width > 0 and height > 0 and [width, height] == fig["size_px"]
        [ax] = fig["axes"]
        assert ax["xlabel"] and ax["ylabel"], ax
        assert len([line for line in ax["lines"] if line["kind"] == "run"]) == 4, ax["lines"]
    assert figs["pareto.png"]["axes"][0]["ylabel"] == "output tokens/s per GPU"
    assert (sweep_dir / "report" / "report.html").stat().st_size > 10000

    down = smlplay(tmp_path, "down", sweep_dir.name)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "nothing left" in down.stdout, down.stdout + down.stderr
    assert not leftovers([str(d) for d in run_dirs] + [sweep_dir.name]), leftovers([str(d) for d in run_dirs])
    assert time.monotonic() - started < 120
