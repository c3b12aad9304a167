"""Torch profiling end to end on the embedded default (playbooks/llama70b.yaml, simulated
workers behind the real smg gateway): the benchmark role starts each chosen worker's profiler
before every measured run and stops it after; the traces (Chrome trace JSON, gzipped, as
SGLang writes them) land in runs/<id>/profiles/."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.stack.stack import get_json, run_stack, tear_down_and_check

PROFILE = {
    # a decode worker by forward steps (one simulated decode token is a step) ...
    "decode": {"type": "torch", "workers": [0], "steps": {"start": 2, "count": 5}},
    # ... and the prefill worker over a time window of the second measured run only
    "prefill": {"type": "torch", "window": {"delay": "0s", "duration": "30s"}, "concurrencies": [4]},
}


def read_trace(path: Path) -> dict:  # type: ignore[type-arg]
    with gzip.open(path, "rt") as f:
        data: dict = json.load(f)  # type: ignore[type-arg]
    return data


def test_torch_profiles_of_the_measured_runs(tmp_path: Path) -> None:
    stack = run_stack(tmp_path, "-e", json.dumps({"profile": PROFILE}))
    try:
        out = stack.proc.stdout + stack.proc.stderr
        assert stack.proc.returncode == 0, out[-6000:]
        profiles = stack.run_dir / "profiles"
        # decode-0: one trace per measured run (concurrencies 1 and 4), exactly `count` steps each
        for c in (1, 4):
            trace = read_trace(profiles / "decode-0" / f"c{c}" / f"decode-0-c{c}-TP-0.trace.json.gz")
            steps = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
            assert len(steps) == 5 and {e["name"] for e in steps} == {"decode"}, steps
            assert all(e["dur"] > 0 for e in steps)
            other = trace["otherData"]
            assert (other["start_step"], other["num_steps"], other["steps_recorded"]) == (2, 5, 5), other
        # prefill-0: only at concurrency 4, every prefill of that run inside the window
        assert not (profiles / "prefill-0" / "c1").exists()
        window = read_trace(profiles / "prefill-0" / "c4" / "prefill-0-c4-TP-0.trace.json.gz")
        prefills = [e for e in window["traceEvents"] if e.get("ph") == "X"]
        assert prefills and {e["name"] for e in prefills} == {"prefill"}, prefills
        record = json.loads((profiles / "profile.json").read_text())
        assert {p["group"]: p["type"] for p in record["profile"]} == {"decode": "torch", "prefill": "torch"}
        assert all(p["output_dir"] == str(profiles) for p in record["profile"])
        # smg registered the workers through its API (ids from POST /workers)
        workers = get_json(f"http://127.0.0.1:{stack.ports['router']}/workers")
        assert workers["stats"] == {"prefill_count": 1, "decode_count": 1, "regular_count": 0}
        assert all(w["id"] and w["is_healthy"] for w in workers["workers"])
    finally:
        tear_down_and_check(stack)
