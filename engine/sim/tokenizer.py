"""Build the simulator's word-level tokenizer as a HuggingFace tokenizer directory.

Benchmark clients (``python -m sglang.bench_serving --tokenizer DIR``) tokenize prompts and
re-tokenize outputs locally. With this tokenizer every whitespace-separated word is one token
and the simulator's output words ``w0 .. w<N-1>`` are in the vocabulary, so the client's counts
and the server's agree exactly, offline, without downloading a real model's tokenizer.

Layout: ids ``0 .. N-1`` are ``w0 .. w<N-1>``, id ``N`` is ``<unk>`` (any other word), then the
special tokens ``<s>``, ``</s>``, ``<pad>``. No post-processor (no BOS is added, so
``num_special_tokens_to_add() == 0``), no normalizer, a whitespace pre-tokenizer; a chat
template that joins the message contents with spaces, as the simulator counts chat prompts.

``tokenizers`` is an optional dependency and is imported only when building.
Usage: ``python -m engine.sim.tokenizer DIR [--vocab-size N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.sim.config import DEFAULT_CONTEXT_LENGTH, DEFAULT_VOCAB_SIZE

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}"
    "{% if not loop.last %} {% endif %}{% endfor %}"
)


def build_tokenizer(
    out_dir: str | Path,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    model_max_length: int = DEFAULT_CONTEXT_LENGTH,
) -> Path:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``.

    Raises ``ImportError`` with an install hint when ``tokenizers`` is missing.
    """
    try:
        from tokenizers import Tokenizer, models, pre_tokenizers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "building the simulator tokenizer needs the 'tokenizers' package "
            "(pip install tokenizers)"
        ) from exc
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {f"w{i}": i for i in range(vocab_size)}
    vocab[UNK] = vocab_size
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([UNK, BOS, EOS, PAD])
    tok.save(str(out / "tokenizer.json"))
    specials = {"unk_token": UNK, "bos_token": BOS, "eos_token": EOS, "pad_token": PAD}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_eos_token": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.sim.tokenizer",
        description="Write the simulator's word-level HuggingFace tokenizer to DIR.",
    )
    parser.add_argument("dir", help="output directory (created if missing)")
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=DEFAULT_VOCAB_SIZE,
        help="words w0..w(N-1); match the server's --sim-vocab-size",
    )
    parser.add_argument("--model-max-length", type=int, default=DEFAULT_CONTEXT_LENGTH)
    args = parser.parse_args(argv)
    try:
        path = build_tokenizer(args.dir, args.vocab_size, args.model_max_length)
    except (ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
