"""Pure parts of the simulator: token counts, deterministic output, metrics, request parsing."""

from __future__ import annotations

import pytest

from engine.sim.core import BootstrapInfo, SimRequestError
from engine.sim.metrics import Metrics
from engine.sim.model import Prompt, detokenize, output_ids
from engine.sim.protocol import parse_chat, parse_completion, parse_generate


def test_prompt_token_counts() -> None:
    assert Prompt.from_text("the quick  brown\nfox").tokens == 4
    assert Prompt.from_text("").tokens == 0
    assert Prompt.from_ids([5, 6, 7]).tokens == 3


def test_output_is_deterministic_and_prefix_stable() -> None:
    p = Prompt.from_text("hello world")
    ten = output_ids(0, p, 10, 32000)
    assert ten == output_ids(0, p, 10, 32000)
    assert output_ids(0, p, 3, 32000) == ten[:3]  # a prefill's first token is the decode's
    assert output_ids(1, p, 10, 32000) != ten  # the seed matters
    assert output_ids(0, Prompt.from_text("hello there"), 10, 32000) != ten
    assert all(0 <= i < 32000 for i in ten)
    assert len(detokenize(ten).split()) == 10


def test_digest_identifies_the_prompt() -> None:
    assert Prompt.from_text("a b").digest == Prompt.from_text("a b").digest
    assert Prompt.from_text("a b").digest != Prompt.from_ids([1, 2]).digest


def test_parse_generate() -> None:
    req, stream = parse_generate(
        {"text": "a b c", "sampling_params": {"max_new_tokens": 5}, "stream": True, "rid": "r1"}
    )
    assert (req.prompt.tokens, req.max_new_tokens, stream, req.rid) == (3, 5, True, "r1")
    req, _ = parse_generate({"input_ids": [[1, 2]]})
    assert req.prompt.tokens == 2 and req.max_new_tokens == 128
    with pytest.raises(SimRequestError, match="Either text or input_ids"):
        parse_generate({})
    with pytest.raises(SimRequestError, match="non-negative"):
        parse_generate({"text": "a", "sampling_params": {"max_new_tokens": -1}})


def test_parse_openai() -> None:
    req, opts = parse_completion(
        {
            "prompt": [1, 2, 3],
            "max_tokens": 4,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        "served",
    )
    assert (req.prompt.tokens, req.max_new_tokens) == (3, 4)
    assert opts.model == "served" and opts.stream and opts.include_usage
    req, opts = parse_chat(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "one two three"}]},
            ],
            "max_tokens": 9,
            "max_completion_tokens": 6,
        },
        "served",
    )
    assert req.prompt.tokens == 5 and req.max_new_tokens == 6 and opts.model == "m"
    with pytest.raises(SimRequestError, match="n > 1"):
        parse_chat({"messages": [{"role": "user", "content": "x"}], "n": 2}, "m")


def test_bootstrap_info() -> None:
    assert BootstrapInfo.from_body({}) is None
    b = BootstrapInfo.from_body({"bootstrap_host": "h", "bootstrap_port": 1, "bootstrap_room": 2})
    assert b == BootstrapInfo("h", 1, 2) and not b.fake
    fake = BootstrapInfo.from_body({"bootstrap_host": "2.2.2.2", "bootstrap_room": 0})
    assert fake is not None and fake.fake
    with pytest.raises(SimRequestError, match="bootstrap_room"):
        BootstrapInfo.from_body({"bootstrap_host": "h", "bootstrap_port": 1})


def test_metrics_render() -> None:
    m = Metrics()
    m.inc("prompt_tokens", 7)
    m.ttft.observe(0.15)
    m.ttft.observe(5)
    text = m.render(
        {"model_name": "m"},
        {"model_name": "m", "engine_type": "decode"},
        {"sglang:num_running_reqs": 2},
    )
    assert 'sglang:num_running_reqs{model_name="m",engine_type="decode"} 2.0' in text
    assert 'sglang:prompt_tokens_total{model_name="m"} 7.0' in text
    assert 'sglang:time_to_first_token_seconds_bucket{model_name="m",le="0.1"} 0' in text
    assert 'sglang:time_to_first_token_seconds_bucket{model_name="m",le="0.2"} 1' in text
    assert 'sglang:time_to_first_token_seconds_bucket{model_name="m",le="+Inf"} 2' in text
    assert "# TYPE sglang:sim_kv_transfers_total counter" in text
