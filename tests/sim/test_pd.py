"""P/D disaggregation without a router: the KV hand-off through the prefill's bootstrap server.

The router's part is only to tag both halves of a request with the same bootstrap
host/port/room; here the test does that itself, so each failure mode can be provoked directly.
(``test_router.py`` runs the same hand-off behind the real sglang-router.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from engine.sim.model import Prompt, detokenize, output_ids
from tests.sim.conftest import HOST, PDPair, StartSim, free_ports, start_pd_pair


@pytest.fixture(scope="module")
def pd(module_tmp: Path) -> Iterator[PDPair]:
    with start_pd_pair(module_tmp, kv_timeout=1) as pair:
        yield pair


def test_requests_without_bootstrap_info_are_refused(pd: PDPair) -> None:
    for sim, mode in ((pd.decode, "decode"), (pd.prefill, "prefill")):
        r = sim.post("/generate", {"text": "a b"})
        assert r.status_code == 400
        msg = r.json()["error"]["message"]
        assert f"{mode} server got a request without bootstrap_host" in msg
        assert "--pd-disaggregation" in msg


def test_paired_request_transfers_kv(pd: PDPair) -> None:
    before = pd.counters(pd.decode)["kv_transfers"]
    body = {"text": "the cat sat", "sampling_params": {"max_new_tokens": 6}, **pd.tag(4242)}
    with ThreadPoolExecutor(2) as pool:
        fd = pool.submit(pd.decode.post, "/generate", body)
        time.sleep(0.2)  # the decode waits for the room to be published
        fp = pool.submit(pd.prefill.post, "/generate", body)
        d, p = fd.result().json(), fp.result().json()
    expected = detokenize(output_ids(0, Prompt.from_text("the cat sat"), 6, 32000))
    assert d["text"] == expected and d["meta_info"]["completion_tokens"] == 6
    assert p["meta_info"]["completion_tokens"] == 1 and expected.startswith(p["text"])
    info = pd.decode.server_info()
    assert info["sim_counters"]["kv_transfers"] == before + 1
    assert info["sim_last_kv_transfer"]["room"] == 4242
    assert info["sim_last_kv_transfer"]["bootstrap"] == f"{HOST}:{pd.bootstrap_port}"
    assert pd.counters(pd.prefill)["kv_published"] >= 1
    metrics = pd.decode.get("/metrics").text
    assert any(
        line.startswith("sglang:sim_kv_transfers_total{") and not line.endswith(" 0.0")
        for line in metrics.splitlines()
    )


def test_chat_stream_through_pd(pd: PDPair) -> None:
    body = {
        "messages": [{"role": "user", "content": "x y"}],
        "max_completion_tokens": 3,
        "stream": True,
        **pd.tag(77),
    }
    assert pd.prefill.post("/v1/chat/completions", body).status_code == 200
    r = pd.decode.post("/v1/chat/completions", body)
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")


def test_wrong_bootstrap_port_fails_loudly(pd: PDPair) -> None:
    wrong = free_ports(1)[0]
    r = pd.decode.post("/generate", {"text": "a", **pd.tag(99, port=wrong)})
    assert r.status_code == 503
    msg = r.json()["error"]["message"]
    assert f"decode could not fetch KV for room 99 from bootstrap {HOST}:{wrong}" in msg
    assert "connection refused" in msg
    assert f"room 99 from bootstrap {HOST}:{wrong}" in pd.decode.log
    assert pd.decode.server_info()["sim_last_kv_error"] == msg
    metrics = pd.decode.get("/metrics").text
    assert any(
        line.startswith("sglang:num_bootstrap_failed_reqs_total{") and not line.endswith(" 0.0")
        for line in metrics.splitlines()
    )


def test_http_port_given_as_bootstrap_port_names_the_real_one(pd: PDPair) -> None:
    r = pd.decode.post("/generate", {"text": "a", **pd.tag(5, port=pd.prefill.port)})
    assert r.status_code == 503
    msg = r.json()["error"]["message"]
    assert f"from bootstrap {HOST}:{pd.prefill.port}" in msg
    assert f"bootstrap server listens on port {pd.bootstrap_port}" in msg


def test_prefill_reports_a_port_mismatch(pd: PDPair) -> None:
    wrong = free_ports(1)[0]
    r = pd.prefill.post("/generate", {"text": "a", **pd.tag(6, port=wrong)})
    assert r.status_code == 200
    info = pd.prefill.server_info()
    assert info["sim_counters"]["bootstrap_port_mismatches"] >= 1
    msg = info["sim_last_bootstrap_port_mismatch"]
    assert f"names bootstrap port {wrong}" in msg and f"listens on port {pd.bootstrap_port}" in msg
    assert msg in pd.prefill.log


def test_room_never_published_times_out(pd: PDPair) -> None:
    t = time.monotonic()
    r = pd.decode.post("/generate", {"text": "a", **pd.tag(123456)})
    assert r.status_code == 503 and time.monotonic() - t < 10
    msg = r.json()["error"]["message"]
    assert "room 123456" in msg and "did not appear within 1s" in msg
    assert f"HTTP port {pd.prefill.port}" in msg  # whose bootstrap server it asked


def test_kv_of_another_request_is_rejected(pd: PDPair) -> None:
    pd.prefill.post("/generate", {"text": "first prompt", **pd.tag(31)})
    r = pd.decode.post("/generate", {"text": "second prompt", **pd.tag(31)})
    assert r.status_code == 500
    assert "does not belong to this request" in r.json()["error"]["message"]


def test_health_generate_in_pd_needs_no_peer(start_sim: StartSim) -> None:
    """A decode alone answers /health_generate (fake bootstrap host, like SGLang's)."""
    decode = start_sim("--disaggregation-mode", "decode")
    assert decode.get("/health_generate", timeout=5).status_code == 200
    assert decode.server_info()["sim_counters"]["kv_fake_transfers"] == 1


def test_bootstrap_server_routes(pd: PDPair) -> None:
    base = f"http://{HOST}:{pd.bootstrap_port}"
    assert httpx.get(base + "/health").text == "OK"
    route = httpx.get(
        base + "/route", params={"engine_rank": -1, "target_dp_group": -1, "target_pp_rank": -1}
    ).json()
    assert route["prefill_dp_size"] == 1
    info = httpx.get(base + "/sim/info").json()
    assert info["bootstrap_port"] == pd.bootstrap_port and info["http_port"] == pd.prefill.port
