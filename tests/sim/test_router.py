"""The simulator behind the real sglang-router 0.3.2, in regular and in P/D mode.

The router's P/D half is what the simulator exists to check: it must tag both halves with the
prefill's bootstrap port, and only a decode that really fetches the KV from that port notices
when the port is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.sim.model import Prompt, detokenize, output_ids
from tests.sim.conftest import HOST, PDPair, Router, StartSim, free_ports, start_pd_pair

pytest.importorskip("sglang_router")
pytestmark = pytest.mark.e2e


def expected_text(prompt: str, n: int) -> str:
    return detokenize(output_ids(0, Prompt.from_text(prompt), n, 32000))


def test_regular_mode(start_sim: StartSim, tmp_path: Path) -> None:
    sims = [start_sim("--model-path", "m"), start_sim("--model-path", "m")]
    router = Router(
        ["--worker-urls", *(s.url for s in sims), "--policy", "round_robin"],
        tmp_path / "router.log",
    )
    try:
        assert sorted(w["worker_type"] for w in router.workers()) == ["regular", "regular"]
        for i in range(4):
            r = router.post(
                "/generate", {"text": f"hi {i}", "sampling_params": {"max_new_tokens": 5}}
            )
            assert r.status_code == 200 and r.json()["text"] == expected_text(f"hi {i}", 5)
        chat = router.post(
            "/v1/chat/completions",
            {
                "model": "m",
                "messages": [{"role": "user", "content": "a b"}],
                "max_tokens": 4,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        assert chat.status_code == 200
        usage = [
            json.loads(line[6:])
            for line in chat.text.splitlines()
            if line.startswith("data: {") and '"usage":{' in line
        ]
        assert usage[-1]["usage"]["completion_tokens"] == 4
        served = [s.server_info()["sim_counters"]["requests"] for s in sims]
        assert all(n >= 2 for n in served), served  # round robin used both workers
    finally:
        router.stop()


@pytest.fixture(scope="module")
def pd_workers(module_tmp: Path) -> Iterator[PDPair]:
    with start_pd_pair(module_tmp, kv_timeout=5) as pair:
        yield pair


def test_pd_mode(pd_workers: PDPair, tmp_path: Path) -> None:
    p, d = pd_workers.prefill, pd_workers.decode
    router = Router(
        [
            "--pd-disaggregation",
            "--prefill",
            p.url,
            str(pd_workers.bootstrap_port),
            "--decode",
            d.url,
        ],
        tmp_path / "router.log",
    )
    try:
        workers = {w["worker_type"]: w for w in router.workers()}
        assert set(workers) == {"prefill", "decode"}
        assert workers["prefill"]["bootstrap_port"] == pd_workers.bootstrap_port
        before = d.server_info()["sim_counters"]["kv_transfers"]
        r = router.post("/generate", {"text": "x y z", "sampling_params": {"max_new_tokens": 8}})
        assert r.status_code == 200, r.text
        assert r.json()["text"] == expected_text("x y z", 8)
        assert r.json()["meta_info"]["completion_tokens"] == 8
        stream = router.post(
            "/v1/completions", {"model": "m", "prompt": "p q", "max_tokens": 3, "stream": True}
        )
        assert stream.status_code == 200 and stream.text.rstrip().endswith("data: [DONE]")
        info = d.server_info()
        assert info["sim_counters"]["kv_transfers"] == before + 2
        assert info["sim_last_kv_transfer"]["bootstrap"] == f"{HOST}:{pd_workers.bootstrap_port}"
        assert info["sim_counters"]["bootstrap_failed"] == 0
        assert p.server_info()["sim_counters"]["kv_published"] >= 2
    finally:
        router.stop()


def test_pd_mode_with_wrong_bootstrap_port(pd_workers: PDPair, tmp_path: Path) -> None:
    """The router is given a port the prefill does not listen on: the request must fail."""
    p, d = pd_workers.prefill, pd_workers.decode
    wrong = free_ports(1)[0]
    router = Router(
        ["--pd-disaggregation", "--prefill", p.url, str(wrong), "--decode", d.url],
        tmp_path / "router.log",
    )
    try:
        r = router.post("/generate", {"text": "x", "sampling_params": {"max_new_tokens": 2}})
        assert r.status_code >= 500
        assert f"bootstrap {HOST}:{wrong}" in r.text  # the router passes the decode's error on
        error = d.server_info()["sim_last_kv_error"]
        assert f"from bootstrap {HOST}:{wrong}: connection refused" in error
        assert "for room " in error
        assert f"bootstrap {HOST}:{wrong}" in d.log
        mismatch = p.server_info()["sim_last_bootstrap_port_mismatch"]
        assert f"names bootstrap port {wrong}" in mismatch
        assert f"listens on port {pd_workers.bootstrap_port}" in mismatch
    finally:
        router.stop()
