"""engine/serving/profiling.py: the ``profile:`` variable, checked and turned into profiler
calls (torch) and launch wrappers (nsys)."""

from __future__ import annotations

import shlex

import pytest

from engine.errors import ValidationError
from engine.serving import nsys_prefix, place_workers, profile_summary, profile_targets

HOSTVARS = {
    "n1": {"node_address": "10.0.0.1", "serving_workers": place_workers(["n1"], {"workers": 2, "tp": 4}, role="decode", gpus_per_node=8, port=31000)},
    "n2": {"node_address": "10.0.0.2", "serving_workers": place_workers(["n2"], {"workers": 1, "tp": 8}, role="prefill", gpus_per_node=8, port=30000, bootstrap_port=8998)},
}
GROUPS = {"decode": ["n1"], "prefill": ["n2"]}


def test_torch_by_steps_targets_the_chosen_workers() -> None:
    profile = {"decode": {"type": "torch", "workers": [1], "steps": {"start": 3, "count": 7}, "activities": ["GPU"]}}
    [target] = profile_targets(profile, HOSTVARS, GROUPS, "/runs/r/profiles", 8)
    assert target["name"] == "decode-1" and target["url"] == "http://10.0.0.1:31001"
    assert target["output_dir"] == "/runs/r/profiles/decode-1/c8"
    assert target["body"] == {"output_dir": "/runs/r/profiles/decode-1/c8", "profile_id": "decode-1-c8", "activities": ["GPU"], "start_step": 3, "num_steps": 7}
    assert target["delay"] is None


def test_a_window_and_a_concurrency_filter() -> None:
    profile = {"prefill": {"window": {"delay": "2s", "duration": "1m"}, "concurrencies": [32]}}
    assert profile_targets(profile, HOSTVARS, GROUPS, "/p", 8) == []
    [target] = profile_targets(profile, HOSTVARS, GROUPS, "/p", 32)
    assert (target["delay"], target["duration"]) == (2.0, 60.0) and "num_steps" not in target["body"]
    [summary] = profile_summary(profile, "/p")
    assert summary == {"group": "prefill", "type": "torch", "workers": "all", "steps": None, "window": {"delay_s": 2.0, "duration_s": 60.0}, "concurrencies": [32], "output_dir": "/p"}


def test_nsys_wraps_the_launch() -> None:
    worker = {**HOSTVARS["n1"]["serving_workers"][0], "rank": 0}
    steps = {"decode": {"type": "nsys", "steps": {"count": 20}}}
    argv = shlex.split(nsys_prefix(steps, "decode", worker, "/p"))
    assert argv == ["nsys", "profile", "--output", "/p/decode-0/decode-0-r0", "--force-overwrite", "true", "--trace", "cuda,nvtx,osrt", "--capture-range", "cudaProfilerApi", "--capture-range-end", "stop"]
    # steps mode: SGLang's profiler opens the capture range (activity CUDA_PROFILER)
    assert profile_targets(steps, HOSTVARS, GROUPS, "/p", 1)[0]["body"]["activities"] == ["CUDA_PROFILER"]
    window = {"decode": {"type": "nsys", "workers": [1], "window": {"delay": 30, "duration": 10}}}
    assert nsys_prefix(window, "decode", worker, "/p") == ""  # worker 0 is not chosen
    assert "--delay 30 --duration 10" in nsys_prefix(window, "decode", {**worker, "index": 1, "name": "decode-1"}, "/p")
    assert profile_targets(window, HOSTVARS, GROUPS, "/p", 1) == []  # nsys times its own window
    assert nsys_prefix({}, "decode", worker, "/p") == nsys_prefix(steps, "prefill", worker, "/p") == ""


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ([1], "profile must be a mapping of worker groups"),
        ({"decode": {"steps": {"count": 1}, "window": {"duration": 1}}}, "give exactly one of steps or window"),
        ({"decode": {"steps": {"count": 1, "stop": 3}}}, "profile.decode.steps: unknown field(s) stop"),
        ({"decode": {"steps": {"count": True}}}, "profile.decode.steps.count must be an integer >= 1"),
        ({"decode": {"window": {"duration": "0s"}}}, "profile.decode.window.duration must be positive"),
        ({"decode": {"steps": {"count": 1}, "workers": "some"}}, "profile.decode.workers must be all or a list of integers"),
        ({"decode": {"steps": {"count": 1}, "nsys_args": "--sample none"}}, "profile.decode.nsys_args must be a list of strings"),
    ],
)
def test_bad_settings(profile: object, message: str) -> None:
    with pytest.raises(ValidationError, match=None) as exc:
        profile_summary(profile, "/p")
    assert message in str(exc.value)
