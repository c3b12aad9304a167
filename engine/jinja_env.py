"""The Jinja2 half of :mod:`engine.template`: the sandboxed environment and the glue between
Jinja's contexts and a :class:`~engine.vars.VarScope`.

Imported on a templar's first template, not with :mod:`engine.template`: Jinja2 and the
filter table (``engine.filters``, which pulls in ``engine.serving``) are ~20 ms of every
``smlplay`` start-up, and a command that renders nothing (``status``, ``logs``, ``down``, a
playbook of plain commands) has no use for them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context as JinjaContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import consume, missing

from engine import placeholders
from engine.errors import Position, TemplateError, UndefinedVariableError
from engine.filters import FILTERS

__all__ = [
    "Context", "EvalContext", "Scope", "TemplateSyntaxError", "Undefined",
    "build_env", "consume", "describe", "error_for", "literal_backslashes", "lookup", "new_context",
]


class _StrictChainableUndefined(ChainableUndefined, StrictUndefined):
    """Strict, except that ``foo.bar`` with ``foo`` undefined is undefined too (not an error).

    Ansible behaves this way, so ``foo.bar | default(x)`` and ``foo.bar is defined`` work;
    using the value in any other way still fails and names ``foo``.
    """

    __slots__ = ()


def _test_result(key: str) -> Any:
    def test(result: Any) -> bool:
        return bool(isinstance(result, Mapping) and result.get(key))

    return test


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, except that an unsafe attribute fails at once: the stock sandbox
    returns an undefined value, which ``| default(x)`` or ``is none`` would silently accept."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


def build_env() -> jinja2.Environment:
    # Templates run in Jinja's sandbox: attributes starting with `_` (``__class__``,
    # ``__globals__``, ``_TemplateReference__context``), function internals and
    # ``str.format`` escapes raise SecurityError instead of reaching Python internals.
    # SandboxedEnvironment, not ImmutableSandboxedEnvironment: roles build lists and dicts
    # local to a template with ``{% do lines.append(...) %}`` / ``labels.update(...)``
    # (roles/router, roles/telemetry, roles/benchmark), which the immutable sandbox forbids.
    env = _Sandbox(
        undefined=_StrictChainableUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
    )
    env.context_class = Context
    env.filters.update(FILTERS)
    env.tests.update(
        {
            "failed": _test_result("failed"),
            "changed": _test_result("changed"),
            "skipped": _test_result("skipped"),
            "succeeded": lambda r: isinstance(r, Mapping) and not r.get("failed"),
            "success": lambda r: isinstance(r, Mapping) and not r.get("failed"),
            "match": lambda v, p: re.match(p, str(v)) is not None,
            "search": lambda v, p: re.search(p, str(v)) is not None,
            "regex": lambda v, p: re.search(p, str(v)) is not None,
        }
    )
    env.globals["lookup"] = lookup
    placeholders.install(env)
    return env


def lookup(kind: str, *terms: str, default: Any = None) -> Any:
    """Ansible's ``lookup('env', NAME)`` and ``lookup('file', PATH)`` on the machine that
    runs the engine (never on a target host). A missing variable is ``''`` (as in
    Ansible) unless ``default`` is given; a missing file is an error."""
    import os
    from pathlib import Path

    values: list[Any] = []
    for term in terms:
        if kind == "env":
            values.append(os.environ.get(str(term), "" if default is None else default))
        elif kind == "file":
            path = Path(str(term)).expanduser()
            try:
                values.append(path.read_text().rstrip("\n"))
            except OSError as exc:
                if default is not None:
                    values.append(default)
                    continue
                raise TemplateError(f"lookup('file', {str(term)!r}): {exc.strerror}") from None
        else:
            raise TemplateError(f"unknown lookup {kind!r}", hint="smlplay knows lookup('env', NAME) and lookup('file', PATH)")
    return values[0] if len(values) == 1 else ",".join(str(v) for v in values)


def literal_backslashes(env: jinja2.Environment, source: str, *, bare: bool = False) -> str:
    """Double the backslashes of string literals inside ``{{ }}`` (all of them if ``bare``).

    YAML already unescaped the value once; Jinja would unescape its string literals again,
    so ``regex_replace('(\\w+)', '\\1')`` would reach ``re`` as ``\x01``. Ansible keeps such
    backslashes literal in playbook values (not in template files), and so do we.
    """
    if "\\" not in source:
        return source
    text = f"{{{{{source}}}}}" if bare else source
    try:
        tokens = list(env.lexer.tokeniter(text, None))
    except TemplateSyntaxError:
        return source  # let the compiler report it on the original text
    out: list[str] = []
    in_expression = False
    for _, kind, value in tokens:
        if kind == "variable_begin":
            in_expression = True
        elif kind == "variable_end":
            in_expression = False
        elif kind == "string" and in_expression:
            value = value.replace("\\", "\\\\")
        out.append(value)
    joined = "".join(out)
    return joined[2:-2] if bare else joined


def describe(exc: Exception) -> str:
    if isinstance(exc, SecurityError):
        return f"unsafe template: {exc} (templates run in a sandbox and cannot reach Python internals)"
    if isinstance(exc, UndefinedError):
        return f"undefined variable: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def error_for(exc: Exception, source: str, pos: Position | None) -> TemplateError:
    """The error to report for ``exc``, raised while compiling or rendering ``source``."""
    if isinstance(exc, TemplateSyntaxError):
        return TemplateError(f"template syntax error in '{source}': {exc.message}", pos=pos)
    kind = UndefinedVariableError if isinstance(exc, UndefinedError) else TemplateError
    return kind(f"cannot render '{source}': {describe(exc)}", pos=pos)



class Context(JinjaContext):
    """Jinja's context, with one scope probe per variable: the stock one asks the parent
    ``in`` and then ``[]``, and each of those probed the scope and then the globals."""

    def resolve_or_missing(self, key: str) -> Any:
        if key in self.vars:
            return self.vars[key]
        parent = self.parent
        if type(parent) is Scope:
            return parent.get_or_missing(key)
        return super().resolve_or_missing(key)

    @classmethod
    def for_expression(cls, template: Any, parent: Scope, eval_ctx: EvalContext) -> Context:
        """The context of a compiled expression (``compile_expression``: no blocks, no
        statements), made without ``Context.__init__``'s per-render evaluation context:
        a quarter of an expression's cost, and a dry-run evaluates ~80,000 of them."""
        ctx = cls.__new__(cls)
        ctx.parent = parent  # type: ignore[assignment]
        ctx.vars = {}
        ctx.environment = template.environment
        ctx.eval_ctx = eval_ctx
        ctx.exported_vars = set()
        ctx.name = template.name
        ctx.globals_keys = set()
        ctx.blocks = {}
        return ctx


def new_context(template: Any, scope: Mapping[str, Any], globals_: Mapping[str, Any]) -> Context:
    """``template.new_context(Scope(scope, globals_), shared=True)`` without copying the
    globals' names into a set per render: Jinja reads that set only for ``{% import %}``,
    where it adds nothing the template's own globals (the same environment's) lack."""
    return Context(template.environment, Scope(scope, globals_), template.name, template.blocks)  # type: ignore[arg-type]


class Scope(Mapping[str, Any]):
    """Jinja's view of a scope: the variables first, then the environment's globals."""

    __slots__ = ("_get_or", "_globals", "_scope")

    def __init__(self, scope: Mapping[str, Any], globals_: Mapping[str, Any]) -> None:
        self._scope = scope
        self._globals = globals_
        self._get_or = getattr(scope, "get_or", None)  # engine.vars.VarScope.get_or

    def __getitem__(self, key: str) -> Any:
        if key in self._scope:
            return self._scope[key]
        return self._globals[key]

    def get_or_missing(self, key: str) -> Any:
        if self._get_or is not None:  # a VarScope: one probe
            value = self._get_or(key, missing)
            return value if value is not missing else self._globals.get(key, missing)
        scope = self._scope
        if key in scope:
            return scope[key]
        return self._globals.get(key, missing)

    def __contains__(self, key: object) -> bool:
        return key in self._scope or key in self._globals

    def __iter__(self) -> Any:
        yield from self._scope
        yield from self._globals

    def __len__(self) -> int:
        return len(self._scope) + len(self._globals)
