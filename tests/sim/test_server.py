"""A regular (non-disaggregated) simulated server over real HTTP: endpoints, formats, counts."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sim.conftest import Sim, StartSim, free_ports, wait_healthy, wait_until

MODEL = "/models/sim-7b"
NAME = "sim-7b"


@pytest.fixture(scope="module")
def sim(module_tmp: Path) -> Iterator[Sim]:
    port = free_ports(1)[0]
    s = Sim(
        port,
        [
            "--model-path",
            MODEL,
            "--served-model-name",
            NAME,
            "--tp-size",
            "2",
            "--sim-tpot-ms",
            "1",
            "--context-length",
            "1000",
        ],
        module_tmp / "sim.log",
    )
    try:
        yield wait_healthy(s)
    finally:
        s.stop()


def sse(resp: httpx.Response) -> list[Any]:
    """The ``data:`` payloads of a server-sent-events body (``[DONE]`` kept as a string)."""
    out: list[Any] = []
    for line in resp.text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
        else:
            assert line == "", line
    return out


def test_health_and_info(sim: Sim) -> None:
    assert sim.get("/health").status_code == 200
    assert sim.get("/health_generate").status_code == 200
    for path in ("/get_model_info", "/model_info"):
        info = sim.get(path).json()
        assert info["model_path"] == MODEL and info["is_generation"] is True
    for path in ("/get_server_info", "/server_info"):
        info = sim.get(path).json()
        assert info["model_path"] == MODEL and info["served_model_name"] == NAME
        assert info["tp_size"] == 2 and info["disaggregation_mode"] == "null"
        assert info["version"] == "0.5.9" and info["internal_states"][0] is not None
        assert info["sim_unknown_args"] == []
    models = sim.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == NAME
    assert sim.get(f"/v1/models/{NAME}").json()["root"] == MODEL
    assert sim.get("/v1/models/other").status_code == 404
    load = sim.get("/get_load").json()
    assert load[0]["dp_rank"] == 0 and "num_waiting_reqs" in load[0]
    assert sim.post("/flush_cache", {}).text.startswith("Cache flushed.")


def test_generate_exact_and_deterministic(sim: Sim) -> None:
    body = {"text": "one two three four", "sampling_params": {"max_new_tokens": 7}}
    a = sim.post("/generate", body).json()
    b = sim.post("/generate", body).json()
    assert a["text"] == b["text"] and a["meta_info"]["id"] != b["meta_info"]["id"]
    words = a["text"].split()
    assert len(words) == 7 and all(w.startswith("w") for w in words)
    assert a["output_ids"] == [int(w[1:]) for w in words]
    meta = a["meta_info"]
    assert meta["prompt_tokens"] == 4 and meta["completion_tokens"] == 7
    assert meta["finish_reason"] == {"type": "length", "length": 7}
    assert meta["e2e_latency"] > 0
    ids = sim.post(
        "/generate", {"input_ids": list(range(11)), "sampling_params": {"max_new_tokens": 0}}
    ).json()
    assert ids["meta_info"]["prompt_tokens"] == 11 and ids["text"] == ""


def test_generate_stream_is_cumulative(sim: Sim) -> None:
    resp = sim.post(
        "/generate",
        {
            "text": "a b",
            "stream": True,
            "sampling_params": {"max_new_tokens": 4, "ignore_eos": True},
        },
    )
    assert resp.headers["content-type"].startswith("text/event-stream")
    chunks = sse(resp)
    assert chunks[-1] == "[DONE]"
    texts = [c["text"] for c in chunks[:-1]]
    assert len(texts) == 4
    assert all(texts[i + 1].startswith(texts[i]) for i in range(3))
    assert [c["meta_info"]["completion_tokens"] for c in chunks[:-1]] == [1, 2, 3, 4]
    assert [c["meta_info"]["finish_reason"] for c in chunks[:-2]] == [None] * 3
    assert chunks[-2]["meta_info"]["finish_reason"]["type"] == "length"
    assert "e2e_latency" in chunks[-2]["meta_info"]
    full = sim.post("/generate", {"text": "a b", "sampling_params": {"max_new_tokens": 4}})
    assert full.json()["text"] == texts[-1]


def test_completions(sim: Sim) -> None:
    body = {"model": NAME, "prompt": "x y z", "max_tokens": 5}
    full = sim.post("/v1/completions", body).json()
    assert full["object"] == "text_completion" and full["model"] == NAME
    assert full["usage"]["prompt_tokens"] == 3 and full["usage"]["completion_tokens"] == 5
    assert full["choices"][0]["finish_reason"] == "length"
    chunks = sse(
        sim.post(
            "/v1/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}
        )
    )
    assert chunks[-1] == "[DONE]"
    usage = chunks[-2]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 5
    text_chunks = chunks[:-2]
    assert "".join(c["choices"][0]["text"] for c in text_chunks) == full["choices"][0]["text"]
    assert [c["choices"][0]["finish_reason"] for c in text_chunks] == [None] * 4 + ["length"]
    no_usage = sse(sim.post("/v1/completions", {**body, "stream": True}))
    assert all(c == "[DONE]" or c["usage"] is None for c in no_usage)
    assert sim.post("/v1/completions", {"prompt": "a"}).json()["usage"]["completion_tokens"] == 16


def test_chat_completions(sim: Sim) -> None:
    body = {
        "model": NAME,
        "messages": [{"role": "user", "content": "p q r s"}],
        "max_completion_tokens": 3,
        "max_tokens": 50,
    }
    full = sim.post("/v1/chat/completions", body).json()
    assert full["object"] == "chat.completion"
    assert full["choices"][0]["message"]["role"] == "assistant"
    assert full["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "total_tokens": 7,
        "prompt_tokens_details": None,
        "reasoning_tokens": 0,
    }
    chunks = sse(
        sim.post(
            "/v1/chat/completions",
            {**body, "stream": True, "stream_options": {"include_usage": True}},
        )
    )
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] == 3
    assert chunks[-3]["choices"][0]["finish_reason"] == "length"
    content = "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks[1:-3])
    assert content == full["choices"][0]["message"]["content"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks[:-1])


def test_errors(sim: Sim) -> None:
    bad = httpx.post(
        sim.url + "/generate", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and "error" in bad.json()
    assert sim.post("/generate", {"sampling_params": {}}).status_code == 400
    long = sim.post("/v1/completions", {"prompt": "w " * 990, "max_tokens": 20})
    assert long.status_code == 400
    err = long.json()
    assert err["object"] == "error" and "context length" in err["message"]
    assert sim.post("/v1/chat/completions", {"messages": []}).status_code == 400


def test_metrics(sim: Sim) -> None:
    def counter(text: str, name: str) -> float:
        for line in text.splitlines():
            if line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} missing")

    before = sim.get("/metrics").text
    sim.post("/generate", {"text": "m1 m2 m3", "sampling_params": {"max_new_tokens": 2}})
    after = sim.get("/metrics").text
    assert (
        counter(after, "sglang:prompt_tokens_total") - counter(before, "sglang:prompt_tokens_total")
        == 3
    )
    assert (
        counter(after, "sglang:generation_tokens_total")
        - counter(before, "sglang:generation_tokens_total")
        == 2
    )
    for name in (
        "sglang:num_running_reqs",
        "sglang:num_queue_reqs",
        "sglang:token_usage",
        "sglang:sim_kv_transfers_total",
    ):
        assert f"{name}{{" in after
    assert f'sglang:time_to_first_token_seconds_count{{model_name="{NAME}"}}' in after
    assert f'sglang:num_running_reqs{{model_name="{NAME}",engine_type="unified"' in after


def test_latency_model_and_queue(start_sim: StartSim) -> None:
    sim = start_sim(
        "--sim-max-running-requests", "1", "--sim-ttft-per-token-ms", "0.5", "--sim-tpot-ms", "10"
    )

    def timed(words: int, tokens: int) -> float:
        t = time.monotonic()
        r = sim.post(
            "/generate", {"text": "w " * words, "sampling_params": {"max_new_tokens": tokens}}
        )
        assert r.status_code == 200
        return time.monotonic() - t

    assert timed(400, 1) > timed(4, 1) + 0.1  # TTFT grows with the prompt (0.5 ms/token)
    assert timed(4, 21) >= 0.2  # 20 TPOTs of 10 ms
    with ThreadPoolExecutor(3) as pool:
        t = time.monotonic()
        futures = [pool.submit(timed, 4, 11) for _ in range(3)]
        queued = 0.0
        while not all(f.done() for f in futures):
            for line in sim.get("/metrics").text.splitlines():
                if line.startswith("sglang:num_queue_reqs{"):
                    queued = max(queued, float(line.rsplit(" ", 1)[1]))
            time.sleep(0.01)
        total = time.monotonic() - t
    assert queued >= 1  # one slot: the others waited
    assert total >= 0.3  # three 0.1 s requests, one after another


def test_startup_delay(start_sim: StartSim) -> None:
    sim = start_sim("--sim-startup-delay", "1.0", wait=False)
    wait_until(lambda: sim.get("/health").status_code == 503, sim, what="503 while starting")
    assert sim.post("/generate", {"text": "a"}).status_code == 503
    assert sim.get("/get_server_info").json()["sim_ready"] is False
    wait_healthy(sim)
    assert "The server is fired up and ready to roll!" in sim.log


def test_unknown_flags_are_reported(start_sim: StartSim) -> None:
    sim = start_sim("--tp-szie", "2", "--attention-backend", "fa3", "--bogus")
    info = sim.server_info()
    assert info["sim_unknown_args"] == ["--tp-szie 2", "--bogus"]
    assert info["sim_ignored_args"] == ["--attention-backend fa3"]
    warning = [line for line in sim.log.splitlines() if "unknown flags" in line]
    assert warning and "--tp-szie 2" in warning[0] and "--bogus" in warning[0]


def test_client_disconnect_aborts_the_request(start_sim: StartSim) -> None:
    sim = start_sim("--sim-tpot-ms", "20")
    body = {"text": "a", "stream": True, "sampling_params": {"max_new_tokens": 200}}
    with httpx.stream("POST", sim.url + "/generate", json=body, timeout=10) as resp:
        next(resp.iter_lines())  # the first token arrived; hang up
    wait_until(
        lambda: sim.server_info()["sim_counters"]["aborted_requests"] == 1,
        sim,
        what="the request counted as aborted",
    )
    assert sim.server_info()["sim_running_reqs"] == 0


def test_lifecycle_port_in_use_sigterm_max_lifetime(start_sim: StartSim) -> None:
    sim = start_sim()
    clash = start_sim(port=sim.port, wait=False)
    assert clash.popen.wait(timeout=15) == 1
    assert f"cannot listen on 127.0.0.1:{sim.port}" in clash.log
    sim.popen.send_signal(signal.SIGTERM)
    assert sim.popen.wait(timeout=15) == 0
    assert "got SIGTERM" in sim.log
    short = start_sim("--sim-max-lifetime", "0.5", wait=False)  # the last value wins
    assert short.popen.wait(timeout=15) == 0
    assert "--sim-max-lifetime 0.5s reached" in short.log
