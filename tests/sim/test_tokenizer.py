"""The word-level tokenizer: one token per word, the simulator's output words in the vocabulary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.sim.model import Prompt, detokenize, output_ids
from engine.sim.tokenizer import build_tokenizer

tokenizers = pytest.importorskip("tokenizers")


def test_build_and_count(tmp_path: Path) -> None:
    out = build_tokenizer(tmp_path / "tok", vocab_size=1000)
    tok = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    assert tok.get_vocab_size(with_added_tokens=False) == 1001  # w0..w999 and <unk>
    words = detokenize(output_ids(0, Prompt.from_text("x"), 50, 1000))
    enc = tok.encode(words, add_special_tokens=True)
    assert len(enc.ids) == 50 and "<unk>" not in enc.tokens
    assert tok.decode(enc.ids) == words
    assert len(tok.encode("some unknown  words\nhere").ids) == 4
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["eos_token"] == "</s>" and "chat_template" in config


def test_cli(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "engine.sim.tokenizer", str(tmp_path / "t"), "--vocab-size", "10"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.strip() == str(tmp_path / "t")
    assert (tmp_path / "t" / "tokenizer.json").is_file()
