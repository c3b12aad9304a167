"""engine/secrets.py: which names are secret, which values are collected, how they are masked."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from engine.errors import ValidationError
from engine.secrets import MASK, SecretRegistry, mask_error


@pytest.fixture
def reg() -> SecretRegistry:
    return SecretRegistry()


@pytest.mark.parametrize("name", ["hf_token", "db_password", "aws_secret", "openai_api_key", "HF_TOKEN", "token", "ssh_key_passphrase"])
def test_secret_names(reg: SecretRegistry, name: str) -> None:
    assert reg.is_secret_name(name)


@pytest.mark.parametrize("name", ["tokenizer", "model", "password_file_mode", "tokens_per_second", "secretary", "eos_token", "pad_token"])
def test_ordinary_names(reg: SecretRegistry, name: str) -> None:
    assert not reg.is_secret_name(name)


def test_marked_names(reg: SecretRegistry) -> None:
    assert not reg.is_secret_name("model_key")
    reg.mark_name("model_key")
    assert reg.is_secret_name("model_key")


def test_masks_every_occurrence_and_derived_strings(reg: SecretRegistry) -> None:
    assert reg.mask("nothing yet") == "nothing yet"
    reg.remember("hf_abc123")
    data = {"cmd": "login --token hf_abc123 && echo hf_abc123", "n": 3, "hf_abc123": ["x hf_abc123"], "t": ("hf_abc123",)}
    assert reg.mask(data) == {"cmd": f"login --token {MASK} && echo {MASK}", "n": 3, MASK: [f"x {MASK}"], "t": (MASK,)}
    assert data["cmd"].startswith("login --token hf_abc123")  # a copy: the engine keeps the value


def test_quoted_and_json_forms_are_masked(reg: SecretRegistry) -> None:
    value = "it's \"x\" $(y)"
    reg.remember(value)
    assert reg.mask_text(f"echo {shlex.quote(value)}") == f"echo {MASK}"
    assert reg.mask_text(json.dumps({"v": value})) == json.dumps({"v": MASK})


def test_longest_value_first(reg: SecretRegistry) -> None:
    reg.remember("abcd")
    reg.remember("abcdefgh")
    assert reg.mask_text("abcdefgh abcd") == f"{MASK} {MASK}"


def test_short_values_templates_and_booleans_are_not_collected(reg: SecretRegistry) -> None:
    reg.remember(["on", True, 1, "{{ lookup('env', 'X') }}", None])
    assert not reg.active
    reg.remember(123456)
    assert reg.mask_text("pin 123456") == f"pin {MASK}"


def test_remember_named_finds_nested_secrets(reg: SecretRegistry) -> None:
    reg.remember_named({"serving": {"hf": {"api_key": "key-nested-1"}}, "model": "llama-3", "list": [{"db_password": "pw-in-list"}]})
    assert reg.mask_text("key-nested-1 pw-in-list llama-3") == f"{MASK} {MASK} llama-3"


def test_mask_error() -> None:
    from engine.secrets import SECRETS

    SECRETS.remember("err-secret-9")
    err = mask_error(ValidationError("bad value err-secret-9", hint="use err-secret-9 less", context="task x err-secret-9"))
    assert "err-secret-9" not in f"{err} {err.message} {err.hint} {err.context} {err.args}"


def test_down_refuses_a_teardown_command_whose_secret_was_masked(tmp_path: Path) -> None:
    """`smlplay down` of a crashed engine replays state.json, where secrets are masked: a
    command holding one is reported, not run with ``********`` in place of the value."""
    from engine.events import ListSink
    from engine.executor.run import unwind
    from engine.executor.teardown import TeardownStack
    from engine.transport.pool import TransportPool

    marker = tmp_path / "ran"
    entries = [
        {"kind": "command", "host": "localhost", "cmd": f"logout --token {MASK}; touch {marker}", "tier": 3, "label": "logout"},
        {"kind": "command", "host": "localhost", "cmd": f"touch {marker}-plain", "tier": 3, "label": "plain"},
    ]
    pool = TransportPool(lambda h: {"connection": "local"})
    try:
        problems = unwind(TeardownStack(lambda e: None, entries), [], pool, ListSink())
    finally:
        pool.close()
    assert len(problems) == 1 and "masked secret" in problems[0] and "run it by hand" in problems[0]
    assert not marker.exists() and (tmp_path / "ran-plain").exists()


def test_dataclasses_are_masked_field_by_field(reg: SecretRegistry) -> None:
    from engine.plan import RenderedPlan

    reg.remember("dc-secret-1")
    plan = RenderedPlan([{"steps": [{"detail": "use dc-secret-1"}]}], [{"cmd": "logout dc-secret-1"}])
    masked = reg.mask(plan)
    assert isinstance(masked, RenderedPlan)
    assert masked.plays[0]["steps"][0]["detail"] == f"use {MASK}" and masked.teardown[0]["cmd"] == f"logout {MASK}"
    assert plan.teardown[0]["cmd"] == "logout dc-secret-1"
