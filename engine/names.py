"""Task names as people read them: rendered, with no ``None`` in them.

Jinja writes a ``None`` value as the word ``None`` (``the image exists ({{ image }})`` ->
``the image exists (None)``). Names render in an overlay environment whose ``finalize``
writes ``None`` as nothing, brackets left empty by that are dropped, runs of spaces are
squeezed, and a name left empty falls back to the task's action.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

_EMPTY_BRACKETS = re.compile(r"\s*(\(\s*\)|\[\s*\]|\{\s*\})")
_lock = threading.Lock()


def _blank_none(value: Any) -> Any:
    return "" if value is None else value


def tidy_name(text: str, fallback: str) -> str:
    """Squeeze what a ``None`` left behind; an empty (or literally ``None``) name falls back."""
    text = " ".join(_EMPTY_BRACKETS.sub("", text).split())
    return fallback if text in ("", "None") else text


def render_name(templar: Any, name: str, scope: Mapping[str, Any], fallback: str) -> str:
    """``name`` rendered against ``scope``; on any error (a value only the run knows, an
    undefined variable) the raw name, as Ansible shows it."""
    if "{{" not in name and "{%" not in name:
        return tidy_name(name, fallback)
    from engine.jinja_env import Scope

    env, cache = _name_env(templar)
    try:
        template = cache.get(name)
        if template is None:
            template = cache[name] = env.from_string(name)
        ctx = template.new_context(Scope(scope, env.globals), shared=True)
        text = str(env.concat(template.root_render_func(ctx)))
    except Exception:  # UnknownValue, undefined, a filter's error: the name is only a label
        return name
    return tidy_name(text, fallback)


def _name_env(templar: Any) -> tuple[Any, dict[str, Any]]:
    found = getattr(templar, "_name_env", None)
    if found is None:
        with _lock:
            found = getattr(templar, "_name_env", None)
            if found is None:
                found = (templar.env.overlay(finalize=_blank_none), {})
                templar._name_env = found
    return found
