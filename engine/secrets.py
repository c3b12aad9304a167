"""Secrets: values that never leave the engine in clear (console, dry-run, logs, run record).

A variable is secret when

* its name matches a secret pattern (:data:`DEFAULT_PATTERNS`: ``*_token``, ``*_password``,
  ``*_secret``, ``*_api_key``, ...), at any depth of a mapping (``hf: {api_key: ...}``);
* a role's ``argument_specs`` marks it ``secret: true``;
* it is defined by a ``no_log`` task (its ``vars:``, what it ``set_fact``\\ s or registers).

Masking is by *value*: the engine collects each secret's rendered value once (when the
variable is rendered, and from the raw inventory / extra vars / play vars before anything
runs), then every string that leaves the engine has each occurrence replaced by
:data:`MASK`. A string derived from a secret (a command line holding the token, an error
message quoting it) is masked too, which masking by name alone could not do. The shell
quoted form (``shlex.quote``) and the JSON-escaped form of a value are masked as well.

The registry is process-wide: one engine process runs one run (or the points of a sweep
one after the other), and a value, once secret, stays secret. Values shorter than
:data:`MIN_LENGTH` characters are not collected: masking ``on`` or ``1`` everywhere would
garble every line while protecting nothing.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import re
import shlex
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

MASK = "********"
MIN_LENGTH = 4
DEFAULT_PATTERNS: tuple[str, ...] = (
    "*_token", "*_password", "*_passwd", "*_secret", "*_api_key", "*_apikey", "*_passphrase",
    "*_private_key", "token", "password", "secret", "api_key", "passphrase",
)

#: Names that match a pattern but are not secrets: a tokenizer's special tokens.
NOT_SECRET: frozenset[str] = frozenset(
    f"{kind}_token" for kind in ("bos", "eos", "pad", "unk", "sep", "cls", "mask", "max", "first", "last")
)

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)
P = ParamSpec("P")


class SecretRegistry:
    """Secret names and values of this process, and the masking of what leaves it."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_PATTERNS) -> None:
        self._patterns = tuple(p.lower() for p in patterns)
        self._names: set[str] = set()
        self._name_cache: dict[str, bool] = {}
        self._values: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    # -- what is secret --------------------------------------------------------------------
    def mark_name(self, name: str) -> None:
        """A variable name that is secret whatever its pattern (``secret: true``)."""
        with self._lock:
            self._names.add(name)
            self._name_cache[name] = True

    def is_secret_name(self, name: str) -> bool:
        cached = self._name_cache.get(name)
        if cached is None:
            low = name.lower()
            cached = name in self._names or (
                low not in NOT_SECRET and any(fnmatch.fnmatchcase(low, p) for p in self._patterns)
            )
            self._name_cache[name] = cached
        return cached

    def remember(self, value: Any) -> None:
        """Collect a secret value (strings and numbers; every leaf of a list or mapping)."""
        new = {v for leaf in _leaves(value) for v in _forms(leaf)} - self._values
        if new:
            with self._lock:
                self._values |= new
                self._regex = None

    def remember_named(self, values: Mapping[str, Any]) -> None:
        """Collect the values of secret-named variables in ``values``, nested ones too.
        Values still to be rendered (``{{ ... }}``) are collected when they are rendered."""
        stack: list[Any] = [values]
        while stack:
            node = stack.pop()
            if isinstance(node, Mapping):
                for key, v in node.items():
                    if isinstance(key, str) and self.is_secret_name(key) and not _templated(v):
                        self.remember(v)
                    else:
                        stack.append(v)
            elif isinstance(node, list | tuple):
                stack.extend(node)

    @property
    def active(self) -> bool:
        return bool(self._values)

    # -- masking ---------------------------------------------------------------------------
    def mask_text(self, text: str) -> str:
        regex = self._compiled()
        return text if regex is None else regex.sub(MASK, text)

    def mask(self, value: T) -> T:
        """A copy of ``value`` with every secret in its strings (keys too) masked; other
        leaves unchanged. Returns ``value`` itself when nothing is secret yet."""
        regex = self._compiled()
        if regex is None:
            return value
        return _masked(value, regex)

    def _compiled(self) -> re.Pattern[str] | None:
        regex = self._regex
        if regex is None and self._values:
            with self._lock:
                ordered = sorted(self._values, key=len, reverse=True)  # longest first: no partial masks
                regex = self._regex = re.compile("|".join(map(re.escape, ordered)))
        return regex

    def clear(self) -> None:
        """Forget every collected name and value (tests)."""
        with self._lock:
            self._names.clear()
            self._name_cache.clear()
            self._values.clear()
            self._regex = None


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _leaves(value: Any) -> Iterable[Any]:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list | tuple | set):
            stack.extend(v)
        elif isinstance(v, str | int | float) and not isinstance(v, bool):
            yield v


def _forms(leaf: str | int | float) -> set[str]:
    """The value as written, shell-quoted (as a command line holds it) and JSON-escaped."""
    text = str(leaf).strip()
    if len(text) < MIN_LENGTH or (isinstance(leaf, str) and _templated(leaf)):
        return set()
    return {text, shlex.quote(text), json.dumps(text)[1:-1]} - {""}


def _masked(value: Any, regex: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return regex.sub(MASK, value)
    if isinstance(value, Mapping):
        return {_masked(k, regex): _masked(v, regex) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, regex) for v in value]
    if isinstance(value, tuple):
        return tuple(_masked(v, regex) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a RenderedPlan
        fields = {f.name: _masked(getattr(value, f.name), regex) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **fields)
    return value


#: The registry of this process.
SECRETS = SecretRegistry()

mark_name = SECRETS.mark_name
is_secret_name = SECRETS.is_secret_name
remember = SECRETS.remember
remember_named = SECRETS.remember_named
mask = SECRETS.mask
mask_text = SECRETS.mask_text


def mask_error(err: E) -> E:
    """``err`` with its message, context and hint masked (errors can quote a value)."""
    for attr in ("message", "context", "hint"):
        text = getattr(err, attr, None)
        if isinstance(text, str):
            setattr(err, attr, mask_text(text))
    if err.args and isinstance(err.args[0], str):
        err.args = (mask_text(err.args[0]), *err.args[1:])
    return err


NO_LOG_TEXT = "(hidden by no_log)"


def remember_no_log(result: Mapping[str, Any]) -> None:
    """What a ``no_log`` task defines is secret: the facts it sets, the output it registers."""
    for one in (result, *(r for r in result.get("results") or () if isinstance(r, Mapping))):
        remember(one.get("ansible_facts"))
        for key in ("stdout", "content"):
            if isinstance(one.get(key), str):
                remember(one[key])


def remember_vars(scope: Mapping[str, Any], names: Iterable[str]) -> None:
    """The ``vars:`` of a ``no_log`` task, rendered (a value that fails to render is the
    task's error to report, not ours)."""
    for name in names:
        try:
            remember(scope[name])
        except Exception:
            continue


def censor_args(args: Any) -> Any:
    """A ``no_log`` task's arguments as a dry-run shows them: the names, not the values."""
    if isinstance(args, Mapping):
        return {k: MASK for k in args}
    return MASK


def remember_layers(layers: tuple[Any, ...]) -> tuple[Any, ...]:
    """``layers`` (the ``-e`` layers), their secret-named values collected."""
    for layer in layers:
        remember_named(layer.values)
    return layers


def collect_static(playbook: Any, inventory: Any, extra_vars: Iterable[Any]) -> None:
    """Before anything renders or is written: the secret-named values written as such in
    the extra vars, the inventory (group and host vars) and the plays' vars."""
    for layer in extra_vars:
        remember_named(layer.values)
    for group in inventory.groups.values():
        remember_named(group.vars)
    for host in inventory.hosts.values():
        remember_named(host.vars)
    for play in playbook.plays:
        remember_named(play.vars)


class MaskingSink:
    """An event sink that masks every event before passing it on (the console display)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def emit(self, kind: str, **data: Any) -> None:
        self.sink.emit(kind, **mask(data))


def masks_result(fn: Callable[P, T]) -> Callable[P, T]:
    """A function whose result is returned masked (``render_plan``: the dry-run, plan.json)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return mask(fn(*args, **kwargs))

    return wrapper


def masked_sink(sink: T) -> T:
    """``sink`` with every event masked (one call where a display is composed)."""
    return MaskingSink(sink)  # type: ignore[return-value]


__all__ = [
    "DEFAULT_PATTERNS",
    "MASK",
    "MIN_LENGTH",
    "NO_LOG_TEXT",
    "SECRETS",
    "MaskingSink",
    "SecretRegistry",
    "censor_args",
    "collect_static",
    "is_secret_name",
    "mark_name",
    "mask",
    "mask_error",
    "mask_text",
    "masked_sink",
    "masks_result",
    "remember",
    "remember_layers",
    "remember_named",
    "remember_no_log",
    "remember_vars",
]
