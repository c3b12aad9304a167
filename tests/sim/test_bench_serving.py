"""Real ``sglang.bench_serving`` 0.5.9 against the simulator: completed and token counts exact.

sglang is an optional install (the ``bench`` extra, then ``pip install --no-deps
sglang==0.5.9``; .ci/run does both). These tests use this interpreter when it has sglang, or
the python named by ``SMLPLAY_SGLANG_PYTHON``; under CI they never skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.sim.tokenizer import build_tokenizer
from tests.sim.conftest import Router, StartSim, free_ports

SGLANG_PYTHON = os.environ.get("SMLPLAY_SGLANG_PYTHON") or (
    sys.executable if importlib.util.find_spec("sglang") is not None else None
)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not SGLANG_PYTHON and os.environ.get("CI") != "true",
        reason="sglang 0.5.9 is not installed: pip install -e '.[bench]' && pip install --no-deps sglang==0.5.9",
    ),
]
PROMPTS, ISL, OSL = 24, 32, 12


def bench(backend: str, base_url: str, tokenizer: Path, out: Path) -> dict[str, object]:
    assert SGLANG_PYTHON
    res = subprocess.run(
        [
            SGLANG_PYTHON,
            "-m",
            "sglang.bench_serving",
            "--backend",
            backend,
            "--base-url",
            base_url,
            "--model",
            "m",
            "--tokenizer",
            str(tokenizer),
            "--dataset-name",
            "random-ids",
            "--random-input-len",
            str(ISL),
            "--random-output-len",
            str(OSL),
            "--random-range-ratio",
            "1.0",
            "--num-prompts",
            str(PROMPTS),
            "--max-concurrency",
            "6",
            "--request-rate",
            "inf",
            "--output-file",
            str(out),
            "--disable-tqdm",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=out.parent,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    result: dict[str, object] = json.loads(out.read_text().splitlines()[-1])
    return result


@pytest.mark.parametrize("backend", ["sglang", "sglang-oai", "sglang-oai-chat"])
def test_bench_serving_counts_are_exact(backend: str, start_sim: StartSim, tmp_path: Path) -> None:
    tok = build_tokenizer(tmp_path / "tok")
    sim = start_sim(
        "--model-path", str(tok), "--served-model-name", "m", "--sim-max-running-requests", "4"
    )
    r = bench(backend, sim.url, tok, tmp_path / "out.jsonl")
    assert r["completed"] == PROMPTS
    assert r["total_input_tokens"] == PROMPTS * ISL
    assert r["total_output_tokens"] == PROMPTS * OSL
    assert r["total_output_tokens_retokenized"] == PROMPTS * OSL
    assert sim.server_info()["sim_counters"]["prompt_tokens"] == (PROMPTS + 1) * ISL  # + warmup


def test_bench_serving_through_pd_router(start_sim: StartSim, tmp_path: Path) -> None:
    tok = build_tokenizer(tmp_path / "tok")
    b_port = free_ports(1)[0]
    prefill = start_sim(
        "--model-path",
        str(tok),
        "--disaggregation-mode",
        "prefill",
        "--disaggregation-bootstrap-port",
        str(b_port),
    )
    decode = start_sim("--model-path", str(tok), "--disaggregation-mode", "decode")
    router = Router(
        ["--pd-disaggregation", "--prefill", prefill.url, str(b_port), "--decode", decode.url],
        tmp_path / "router.log",
    )
    try:
        r = bench("sglang", router.url, tok, tmp_path / "out.jsonl")
        assert r["completed"] == PROMPTS and r["total_output_tokens"] == PROMPTS * OSL
        assert decode.server_info()["sim_counters"]["kv_transfers"] == PROMPTS + 1
    finally:
        router.stop()
