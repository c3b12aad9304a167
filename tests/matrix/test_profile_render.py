"""``profile:`` in dry-runs: nsys wraps the chosen workers' launch commands (render-tested
only: no nsys here), torch starts and stops SGLang's profiler around each measured run, and
bad settings are refused at render time."""

from __future__ import annotations

import json
import shlex

import pytest

from tests.matrix.checks import command_after, parse_flags, steps
from tests.matrix.conftest import PD_PLAYBOOK, REPO, Workspace
from tests.matrix.test_rendering_matrix import worker_scripts

NSYS = {
    "decode": {"type": "nsys", "workers": [0], "steps": {"start": 10, "count": 50}},
    "prefill": {"type": "nsys", "window": {"delay": "60s", "duration": "30s"}, "nsys_args": ["--sample", "none"]},
}


def test_nsys_wraps_the_chosen_workers(workspace: Workspace, sglang_flags: dict) -> None:  # type: ignore[type-arg]
    layout = {"prefill": {"workers": 1, "tp": 8}, "decode": {"workers": 2, "tp": 16}}
    result = workspace.dry_run(PD_PLAYBOOK, workspace.slurm_inventory, "-e", json.dumps({"layout": layout, "profile": NSYS, "opentela": False, "telemetry": False}))
    plan = result.plan
    seen = set()
    for item, text in worker_scripts(plan):
        line = next(ln for ln in text.splitlines() if ln.startswith("exec "))
        tokens = shlex.split(line)[1:]
        launcher = tokens.index("python3")
        wrapped, rest = tokens[:launcher], tokens[launcher:]
        _, errors = parse_flags(command_after(line, "-m sglang.launch_server") or [], sglang_flags)
        assert not errors, errors
        where = f"{item['name']} rank {item['rank']}"
        if item["name"] == "decode-1":
            assert wrapped == [], f"{where} is not profiled: {line}"
            continue
        seen.add((item["name"], item["rank"]))
        assert wrapped[:2] == ["nsys", "profile"], line
        opts = dict(zip(wrapped[2::2], wrapped[3::2], strict=False))
        assert opts["--output"] == f"{REPO_RUNS(workspace)}/<run-id>/profiles/{item['name']}/{item['name']}-r{item['rank']}", opts
        if item["role"] == "decode":
            assert (opts["--capture-range"], opts["--capture-range-end"]) == ("cudaProfilerApi", "stop"), opts
            assert "--delay" not in opts
        else:
            assert (opts["--delay"], opts["--duration"], opts["--sample"]) == ("60", "30", "none"), opts
        assert rest[:3] == ["python3", "-m", "sglang.launch_server"]
        assert "command -v nsys" in text and f"/profiles/{item['name']}'" in text
    assert seen == {("decode-0", 0), ("decode-0", 1), ("prefill-0", 0)}
    # steps mode: SGLang's profiler opens nsys's capture range around each measured run
    started = [s for _, s in steps(plan, "benchmark") if s["action"] == "http" and s["args"]["url"].endswith("/start_profile")]
    assert len(started) == 3  # decode-0 at concurrencies 1, 8, 32 (prefill's window is nsys's own)
    body = started[0]["args"]["body"]
    assert body["activities"] == ["CUDA_PROFILER"] and (body["start_step"], body["num_steps"]) == (10, 50), body
    stopped = [s for _, s in steps(plan, "benchmark") if s["action"] == "http" and s["args"]["url"].endswith("/stop_profile")]
    assert len(stopped) == 3


def REPO_RUNS(workspace: Workspace) -> str:
    return workspace.env["SMLPLAY_RUNS_DIR"]


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"decode": {"type": "perf", "steps": {"count": 5}}}, "profile.decode.type is torch or nsys, not 'perf'"),
        ({"decode": {"type": "torch"}}, "profile.decode: give exactly one of steps or window"),
        ({"decode": {"steps": {"count": 0}}}, "profile.decode.steps.count must be an integer >= 1"),
        ({"decode": {"window": {"delay": "5s"}}}, "profile.decode.window.duration is required"),
        ({"decoder": {"steps": {"count": 5}}}, "profile: 'decoder' is not a worker group"),
        ({"workers": {"steps": {"count": 5}}}, "profile.workers: this deployment has no workers workers"),
        ({"decode": {"steps": {"count": 5}, "worker": [0]}}, "profile.decode: unknown field(s) worker"),
    ],
)
def test_bad_profile_settings_are_refused(workspace: Workspace, profile: dict, message: str) -> None:  # type: ignore[type-arg]
    result = workspace.dry_run(PD_PLAYBOOK, REPO / "inventory" / "local.yaml", "-e", json.dumps({"profile": profile}))
    assert result.rc == 2, result.explain()
    assert message in result.stderr, result.explain()
    assert "Traceback" not in result.stderr
