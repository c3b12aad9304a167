"""Request parsing and response shapes of SGLang 0.5.9's native and OpenAI endpoints.

The shapes follow ``sglang/srt/entrypoints/http_server.py`` and ``entrypoints/openai/`` of the
0.5.9 wheel, down to the fields benchmark clients read: ``/generate`` streams the *cumulative*
text with ``meta_info.completion_tokens``; ``/v1/completions`` chunks carry ``choices[0].text``
deltas with the finish reason on the last token's chunk; ``/v1/chat/completions`` sends a role
chunk first, content deltas, a separate finish chunk, and a usage chunk (empty ``choices``) when
``stream_options.include_usage`` is set. Every finish is ``length``: the simulator always emits
exactly the requested number of tokens, whether or not ``ignore_eos`` is set.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from engine.sim.core import BootstrapInfo, GenRequest, SimRequestError
from engine.sim.model import Prompt, detokenize

#: SGLang's default ``max_new_tokens`` (sampling params), used by /generate and chat.
DEFAULT_MAX_NEW_TOKENS = 128
#: OpenAI's (and SGLang's CompletionRequest's) default ``max_tokens`` for /v1/completions.
DEFAULT_COMPLETION_MAX_TOKENS = 16


@dataclass(frozen=True)
class OpenAIOptions:
    """The parts of an OpenAI request that shape the response rather than the generation."""

    model: str
    stream: bool
    include_usage: bool
    continuous_usage: bool


def new_rid() -> str:
    """SGLang's request ids are bare uuid4 hex strings."""
    return uuid.uuid4().hex


# --- parsing ------------------------------------------------------------------------------


def parse_generate(body: dict[str, Any]) -> tuple[GenRequest, bool]:
    """A native ``/generate`` body to a request and its ``stream`` flag."""
    prompt = _prompt_from(body.get("text"), body.get("input_ids"), "text", "input_ids")
    sampling = body.get("sampling_params") or {}
    if not isinstance(sampling, dict):
        raise SimRequestError("sampling_params must be an object")
    max_new = _max_tokens(sampling.get("max_new_tokens"), DEFAULT_MAX_NEW_TOKENS, "max_new_tokens")
    rid = body.get("rid")
    if isinstance(rid, list):
        rid = rid[0] if rid else None
    req = GenRequest(
        rid=str(rid) if rid else new_rid(),
        prompt=prompt,
        max_new_tokens=max_new,
        bootstrap=BootstrapInfo.from_body(body),
        log_metrics=body.get("log_metrics", True) is not False,
    )
    return req, bool(body.get("stream"))


def parse_completion(body: dict[str, Any], served_model: str) -> tuple[GenRequest, OpenAIOptions]:
    """A ``/v1/completions`` body."""
    if "prompt" not in body:
        raise SimRequestError("Field 'prompt' is required")
    raw = body["prompt"]
    if isinstance(raw, list) and raw and isinstance(raw[0], int | list):
        prompt = _prompt_from(None, raw, "prompt", "prompt")
    else:
        prompt = _prompt_from(raw, None, "prompt", "prompt")
    _only_one_choice(body)
    if body.get("echo"):
        raise SimRequestError("echo is not supported by the simulated server")
    max_new = _max_tokens(body.get("max_tokens"), DEFAULT_COMPLETION_MAX_TOKENS, "max_tokens")
    return _openai_request(body, prompt, max_new), _options(body, served_model)


def parse_chat(body: dict[str, Any], served_model: str) -> tuple[GenRequest, OpenAIOptions]:
    """A ``/v1/chat/completions`` body; the prompt is the messages' text joined by spaces.

    A real server applies a chat template (extra tokens); the simulator counts only the words
    of the message contents, which is what the simulator's tokenizer template produces too.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SimRequestError("Field 'messages' must be a non-empty list")
    parts: list[str] = []
    for msg in messages:
        if not isinstance(msg, dict):
            raise SimRequestError("each message must be an object")
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            ]
    _only_one_choice(body)
    raw_max = body.get("max_completion_tokens")
    if raw_max is None:
        raw_max = body.get("max_tokens")
    max_new = _max_tokens(raw_max, DEFAULT_MAX_NEW_TOKENS, "max_completion_tokens")
    prompt = Prompt.from_text(" ".join(parts))
    return _openai_request(body, prompt, max_new), _options(body, served_model)


def _prompt_from(text: Any, ids: Any, text_name: str, ids_name: str) -> Prompt:
    if text is None and ids is None:
        raise SimRequestError(f"Either {text_name} or {ids_name} should be provided.")
    if isinstance(text, list):
        if len(text) != 1:
            raise SimRequestError("batched prompts are not supported by the simulated server")
        text = text[0]
    if text is not None:
        if not isinstance(text, str):
            raise SimRequestError(f"{text_name} must be a string")
        return Prompt.from_text(text)
    if isinstance(ids, list) and ids and isinstance(ids[0], list):
        if len(ids) != 1:
            raise SimRequestError("batched prompts are not supported by the simulated server")
        ids = ids[0]
    if not isinstance(ids, list) or not all(isinstance(x, int) for x in ids):
        raise SimRequestError(f"{ids_name} must be a list of token ids")
    return Prompt.from_ids(ids)


def _max_tokens(value: Any, default: int, name: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SimRequestError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _only_one_choice(body: dict[str, Any]) -> None:
    if body.get("n") not in (None, 1):
        raise SimRequestError("n > 1 is not supported by the simulated server")


def _openai_request(body: dict[str, Any], prompt: Prompt, max_new: int) -> GenRequest:
    rid = body.get("rid")
    return GenRequest(
        rid=str(rid) if rid else new_rid(),
        prompt=prompt,
        max_new_tokens=max_new,
        bootstrap=BootstrapInfo.from_body(body),
    )


def _options(body: dict[str, Any], served_model: str) -> OpenAIOptions:
    so = body.get("stream_options") or {}
    return OpenAIOptions(
        model=str(body.get("model") or served_model),
        stream=bool(body.get("stream")),
        include_usage=bool(so.get("include_usage")),
        continuous_usage=bool(so.get("continuous_usage_stats")),
    )


# --- native /generate ---------------------------------------------------------------------


def finish_reason(n_tokens: int) -> dict[str, Any]:
    return {"type": "length", "length": n_tokens}


def generate_output(
    req: GenRequest, ids: tuple[int, ...], finished: bool, created: float
) -> dict[str, Any]:
    """One ``/generate`` result: cumulative text and ids, ``meta_info`` like SGLang's."""
    meta: dict[str, Any] = {
        "id": req.rid,
        "finish_reason": finish_reason(len(ids)) if finished else None,
        "prompt_tokens": req.prompt.tokens,
        "weight_version": "default",
        "total_retractions": 0,
        "completion_tokens": len(ids),
        "cached_tokens": 0,
    }
    if finished:
        meta["e2e_latency"] = time.time() - created
    return {"text": detokenize(list(ids)), "output_ids": list(ids), "meta_info": meta}


# --- OpenAI -------------------------------------------------------------------------------


def usage(req: GenRequest, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": req.prompt.tokens,
        "total_tokens": req.prompt.tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
        "reasoning_tokens": 0,
    }


def streaming_usage(req: GenRequest, completion_tokens: int) -> dict[str, Any]:
    """The usage of the final chunk (SGLang dumps it with ``exclude_none``)."""
    u = usage(req, completion_tokens)
    del u["prompt_tokens_details"]
    return u


def _openai(
    req: GenRequest,
    opts: OpenAIOptions,
    obj: str,
    created: int,
    usage: dict[str, Any] | None,
    *,
    choice: dict[str, Any] | None = None,
    finish: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The shape every OpenAI response and stream chunk shares: one choice (``choice`` is
    its content: ``text``, ``message`` or ``delta``), or none for a usage chunk."""
    choices = (
        []
        if choice is None
        else [{"index": 0, **choice, "logprobs": None, "finish_reason": finish, "matched_stop": None}]
    )
    return {
        "id": req.rid,
        "object": obj,
        "created": created,
        "model": opts.model,
        "choices": choices,
        "usage": usage,
        **extra,
    }


def _message(role: str | None, content: str | None) -> dict[str, Any]:
    """A chat ``message`` (whole response) or ``delta`` (stream chunk)."""
    return {"role": role, "content": content, "reasoning_content": None, "tool_calls": None}


def _response(
    req: GenRequest, opts: OpenAIOptions, obj: str, created: int, ids: tuple[int, ...], choice: Any
) -> dict[str, Any]:
    """A whole (non-streaming) response: every token, usage and metadata."""
    n = len(ids)
    return _openai(req, opts, obj, created, usage(req, n), choice=choice, finish="length", metadata=None)


def completion_response(
    req: GenRequest, opts: OpenAIOptions, ids: tuple[int, ...], created: int
) -> dict[str, Any]:
    return _response(req, opts, "text_completion", created, ids, {"text": detokenize(list(ids))})


def completion_chunk(
    req: GenRequest,
    opts: OpenAIOptions,
    delta: str,
    finished: bool,
    created: int,
    n_tokens: int,
) -> dict[str, Any]:
    return _openai(
        req,
        opts,
        "text_completion",
        created,
        usage(req, n_tokens) if opts.continuous_usage else None,
        choice={"text": delta},
        finish="length" if finished else None,
    )


def chat_response(
    req: GenRequest, opts: OpenAIOptions, ids: tuple[int, ...], created: int
) -> dict[str, Any]:
    message = _message("assistant", detokenize(list(ids)))
    return _response(req, opts, "chat.completion", created, ids, {"message": message})


def chat_chunk(
    req: GenRequest,
    opts: OpenAIOptions,
    created: int,
    *,
    role: str | None = None,
    content: str | None = None,
    finish: str | None = None,
    n_tokens: int | None = None,
) -> dict[str, Any]:
    return _openai(
        req,
        opts,
        "chat.completion.chunk",
        created,
        usage(req, n_tokens) if n_tokens is not None else None,
        choice={"delta": _message(role, content)},
        finish=finish,
    )


def usage_chunk(
    req: GenRequest, opts: OpenAIOptions, created: int, n_tokens: int, obj: str
) -> dict[str, Any]:
    return _openai(req, opts, obj, created, streaming_usage(req, n_tokens))


def openai_error(message: str, err_type: str, status: int) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": err_type, "param": None, "code": status}


# --- streams ------------------------------------------------------------------------------


class GenerateStream:
    """``/generate`` stream: one chunk per token with the cumulative text and ids."""

    def __init__(self, req: GenRequest, created: float) -> None:
        self._req = req
        self._created = created

    def chunks(self, ids: tuple[int, ...], finished: bool) -> list[dict[str, Any]]:
        return [generate_output(self._req, ids, finished, self._created)]

    def tail(self, n_tokens: int) -> list[dict[str, Any]]:
        return []


class CompletionStream:
    """``/v1/completions`` stream: text deltas; finish reason on the last token's chunk."""

    def __init__(self, req: GenRequest, opts: OpenAIOptions, created: int) -> None:
        self._req, self._opts, self._created = req, opts, created
        self._sent = 0

    def chunks(self, ids: tuple[int, ...], finished: bool) -> list[dict[str, Any]]:
        delta = _delta(ids, self._sent)
        self._sent = len(ids)
        return [completion_chunk(self._req, self._opts, delta, finished, self._created, len(ids))]

    def tail(self, n_tokens: int) -> list[dict[str, Any]]:
        if not self._opts.include_usage:
            return []
        return [usage_chunk(self._req, self._opts, self._created, n_tokens, "text_completion")]


class ChatStream:
    """``/v1/chat/completions`` stream: role chunk, content deltas, finish chunk, usage chunk."""

    def __init__(self, req: GenRequest, opts: OpenAIOptions, created: int) -> None:
        self._req, self._opts, self._created = req, opts, created
        self._sent = -1  # -1: the role chunk is still to be sent

    def chunks(self, ids: tuple[int, ...], finished: bool) -> list[dict[str, Any]]:
        out = []
        if self._sent < 0:
            out.append(
                chat_chunk(self._req, self._opts, self._created, role="assistant", content="")
            )
            self._sent = 0
        delta = _delta(ids, self._sent)
        self._sent = len(ids)
        if delta:
            n = len(ids) if self._opts.continuous_usage else None
            out.append(chat_chunk(self._req, self._opts, self._created, content=delta, n_tokens=n))
        return out

    def tail(self, n_tokens: int) -> list[dict[str, Any]]:
        out = [chat_chunk(self._req, self._opts, self._created, finish="length")]
        if self._opts.include_usage:
            out.append(
                usage_chunk(self._req, self._opts, self._created, n_tokens, "chat.completion.chunk")
            )
        return out


def _delta(ids: tuple[int, ...], sent: int) -> str:
    """The text of ``ids[sent:]`` as it extends the text of ``ids[:sent]``."""
    new = detokenize(list(ids[sent:]))
    return f" {new}" if sent and new else new
