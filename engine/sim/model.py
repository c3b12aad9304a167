"""The simulated model: how many tokens a prompt has, and which words come out.

Everything here is a pure function of the request and the seed, so two servers with the same seed
(a prefill and its decode, or two replicas) produce the same words, and a benchmark's token counts
can be checked exactly: a prompt has as many tokens as whitespace-separated words (or
``len(input_ids)``), and the output is ``max_new_tokens`` words ``w<id>`` that the word-level
tokenizer of :mod:`engine.sim.tokenizer` maps to exactly one token each.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    """A request's input, reduced to what the simulator needs.

    ``key`` is the canonical bytes both the token seed and the KV digest are computed from:
    the prefill and the decode of one request receive the same body from the router, so they
    derive the same key, and a mismatch means the router paired two different requests.
    """

    tokens: int
    key: bytes

    @classmethod
    def from_text(cls, text: str) -> Prompt:
        """A text prompt: one token per whitespace-separated word."""
        return cls(tokens=len(text.split()), key=b"text:" + text.encode())

    @classmethod
    def from_ids(cls, ids: list[int]) -> Prompt:
        """A pre-tokenized prompt: one token per id."""
        return cls(tokens=len(ids), key=b"ids:" + json.dumps(ids, separators=(",", ":")).encode())

    @property
    def digest(self) -> str:
        """A short fingerprint of the prompt: what the simulated "KV cache" is made of."""
        return hashlib.sha256(self.key).hexdigest()[:32]


def output_ids(seed: int, prompt: Prompt, n: int, vocab_size: int) -> list[int]:
    """The first ``n`` output token ids for ``prompt``; a prefix of the ids for any larger ``n``."""
    h = hashlib.blake2b(prompt.key, digest_size=8, key=str(seed).encode())
    rng = random.Random(int.from_bytes(h.digest(), "big"))
    return [rng.randrange(vocab_size) for _ in range(n)]


def token_text(token_id: int) -> str:
    """The word of a token id (``w17``): one token for the simulator's word-level tokenizer."""
    return f"w{token_id}"


def detokenize(ids: list[int]) -> str:
    """Join output words with single spaces, as the word-level tokenizer decodes them."""
    return " ".join(token_text(i) for i in ids)
