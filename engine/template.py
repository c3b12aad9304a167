"""Jinja2 templating with strict undefined variables, native types and exact error positions.

Three rules, each fixing an Ansible complaint:

* A value that is exactly one expression (``"{{ 2 * n }}"``) keeps its native type (an
  int here); anything else renders to a string. No ``literal_eval`` of rendered text.
* ``when``/``until``/``changed_when``/``failed_when`` are bare expressions that must produce
  a boolean; ``"{{ x }}"`` in them and ``when: "yes"`` are errors, not guesses.
* Variables resolve lazily against a :class:`~engine.vars.VarScope`, so only what a task
  uses is rendered, and an error names the variable, the field and its file:line.

In a dry-run, values that only exist once something has run (registered results, the
allocation's nodes) are :class:`Unknown` placeholders that print as ``<registered: x.y>``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import ChainableUndefined, StrictUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import consume, missing

from engine import placeholders
from engine.errors import Position, SmlplayError, TemplateError, UndefinedVariableError
from engine.filters import FILTERS
from engine.load.yaml import position_of
from engine.placeholders import PartlyUnknown, Unknown, UnknownValue

_SINGLE_EXPR = re.compile(r"^\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\Z", re.DOTALL)  # \Z: "{{ x }}\n" keeps its newline


class _StrictChainableUndefined(ChainableUndefined, StrictUndefined):
    """Strict, except that ``foo.bar`` with ``foo`` undefined is undefined too (not an error).

    Ansible behaves this way, so ``foo.bar | default(x)`` and ``foo.bar is defined`` work;
    using the value in any other way still fails and names ``foo``.
    """

    __slots__ = ()


#: YAML 1.1 booleans, which are plain strings here (see engine.load.yaml).
_YAML11_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n"})


def _test_result(key: str) -> Any:
    def test(result: Any) -> bool:
        return bool(isinstance(result, Mapping) and result.get(key))

    return test


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, except that an unsafe attribute fails at once: the stock sandbox
    returns an undefined value, which ``| default(x)`` or ``is none`` would silently accept."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


def _build_env() -> jinja2.Environment:
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
    env.context_class = _Context
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


class Templar:
    """Renders values, expressions and template files against a variable scope.

    Compiled templates are cached by source text: the same task renders on every host, so
    compiling once is most of the speed-up Ansible lost by re-templating everything.
    """

    def __init__(self) -> None:
        self.env = _build_env()
        # template files: a block tag's own newline is dropped (Ansible's trim_blocks)
        self.file_env = self.env.overlay(trim_blocks=True)
        self._cache: dict[tuple[str, str], Any] = {}
        self._sources: dict[Path, tuple[tuple[int, int, int], str]] = {}
        self._lock = threading.Lock()
        # an expression has no statements that could change its evaluation context
        # (``{% autoescape %}``): all of them share one
        self._expr_eval_ctx = EvalContext(self.env)

    # -- compilation -------------------------------------------------------------------
    def _compiled(self, kind: str, source: str) -> Any:
        key = (kind, source)
        cached = self._cache.get(key)
        if cached is None:
            if kind == "expr":
                cached = self.env.compile_expression(literal_backslashes(self.env, source, bare=True))._template
            else:
                cached = self.env.from_string(literal_backslashes(self.env, source))
            with self._lock:
                self._cache[key] = cached
        return cached

    def _compiled_file(self, path: Path, source: str) -> Any:
        # keyed by path and text: the name makes Jinja's traceback frames map to template
        # lines, and a launch script rendered for 1,000 workers compiles once
        key = ("file", f"{path}\0{source}")
        cached = self._cache.get(key)
        if cached is None:
            env = self.file_env
            code = env.compile(source, name=path.name, filename=str(path))
            cached = env.template_class.from_code(env, code, env.make_globals(None))
            with self._lock:
                self._cache[key] = cached
        return cached

    # -- public API ----------------------------------------------------------------------
    def is_template(self, value: Any) -> bool:
        return isinstance(value, str) and ("{{" in value or "{%" in value)

    def render(self, value: Any, scope: Mapping[str, Any], *, pos: Position | None = None) -> Any:
        """Render a value recursively (dicts, lists, strings); other values pass through."""
        if isinstance(value, str):
            if "{{" not in value and "{%" not in value:
                return str(value)
            return self._render_str(value, scope, getattr(value, "pos", None) or pos)
        if type(value) in _PLAIN_LEAVES:  # before the Mapping check, an ABC's (slow) isinstance
            return value
        if isinstance(value, (dict, Mapping)):  # dict first: the fast check
            out = {}
            for k, v in value.items():
                # plain keys and leaves (most of a task's args) as the recursive call would
                # return them, without it: a 1024-node dry-run renders ~500,000 of them
                rk = str(k) if isinstance(k, str) and "{{" not in k and "{%" not in k else self.render(k, scope, pos=pos)
                if isinstance(v, str) and "{{" not in v and "{%" not in v:
                    out[rk] = str(v)
                elif type(v) in _PLAIN_LEAVES:
                    out[rk] = v
                else:
                    out[rk] = self.render(v, scope, pos=_value_pos(value, k, pos))
            return out
        if isinstance(value, list | tuple):
            return [self.render(v, scope, pos=_item_pos(value, i, pos)) for i, v in enumerate(value)]
        return value

    def evaluate(self, expr: str, scope: Mapping[str, Any], *, pos: Position | None = None) -> Any:
        """Evaluate a bare Jinja2 expression and return its native value."""
        source = str(expr).strip()
        try:
            template = self._compiled("expr", source)
            ctx = _Context.for_expression(template, _Scope(scope, self.env.globals), self._expr_eval_ctx)
            before = placeholders.rendered()
            consume(template.root_render_func(ctx))
            result = ctx.vars["result"]
            if isinstance(result, jinja2.Undefined):
                result._fail_with_undefined_error()
            if type(result) is str and placeholders.rendered() != before:
                return PartlyUnknown(result)  # `'a' ~ r.stdout`: text around a placeholder
            return result
        except UnknownValue:
            raise
        except SmlplayError as exc:  # raised by a filter (``mandatory``): give it the field
            if exc.pos is None:
                exc.pos = position_of(expr) or pos
            raise
        except Exception as exc:
            raise self._error(exc, source, position_of(expr) or pos) from None

    def condition(
        self, expr: Any, scope: Mapping[str, Any], *, keyword: str, pos: Position | None = None
    ) -> bool:
        """A ``when``-style condition: a bare expression that must evaluate to a boolean."""
        where = position_of(expr) or pos
        if isinstance(expr, bool):
            return expr
        text = str(expr)
        check_bare_expression(text, keyword=keyword, pos=where)
        try:
            value = self.evaluate(text, scope, pos=where)
        except TemplateError:
            word = text.strip()
            if word.lower() in _YAML11_BOOLEANS and word not in scope:
                raise TemplateError(
                    f"'{keyword}: {word}' is not a boolean: only true and false are booleans "
                    f"(YAML 1.2), so '{word}' is read as an undefined variable",
                    pos=where,
                    hint=f"write  {keyword}: {'true' if word.lower() in ('yes', 'on', 'y') else 'false'}",
                ) from None
            raise
        if isinstance(value, Unknown):
            raise UnknownValue(value)
        if not isinstance(value, bool):
            raise TemplateError(
                f"'{keyword}: {text}' must evaluate to a boolean, got {type(value).__name__} {value!r}",
                pos=where,
                hint="compare explicitly, e.g. `x | length > 0`, `x == 'yes'` or `x | bool`",
            )
        return value

    def render_file(self, path: Path, scope: Mapping[str, Any]) -> str:
        """Render a template file; errors carry the template's own file and line."""
        try:
            source = self._source(path)
        except OSError as exc:
            raise TemplateError(f"cannot read template {path}: {exc}") from None
        try:
            env = self.file_env
            template = self._compiled_file(path, source)
            ctx = _new_context(template, scope, env.globals)
            return str(env.concat(template.root_render_func(ctx)))
        except UnknownValue:
            raise
        except SmlplayError as exc:
            if exc.pos is None:  # raised by a filter: point at the template line
                exc.pos = Position(str(path), _template_line(exc, str(path), locals().get("template")) or 1, 1)
            raise
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error: {exc.message}", pos=Position(str(path), exc.lineno, 1)
            ) from None
        except Exception as exc:
            line = _template_line(exc, str(path), locals().get("template")) or 1
            raise TemplateError(
                f"in template: {_describe(exc)}", pos=Position(str(path), line, 1)
            ) from None

    # -- internals -----------------------------------------------------------------------
    def _source(self, path: Path) -> str:
        """A template file's text, read again only when the file changed: a launch script
        rendered for 1,000 workers was read (open, read, decode) 1,000 times."""
        st = os.stat(path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._sources.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        source = path.read_text(encoding="utf-8")
        with self._lock:
            self._sources[path] = (stamp, source)
        return source

    def _render_str(self, value: str, scope: Mapping[str, Any], pos: Position | None) -> Any:
        single = _single_expression(value)
        if single is not None:
            try:
                return self.evaluate(single, scope, pos=pos)
            except UnknownValue as exc:
                return exc.unknown
        try:
            template = self._compiled("str", value)
            ctx = _new_context(template, scope, self.env.globals)
            before = placeholders.rendered()
            text = str(self.env.concat(template.root_render_func(ctx)))
            return PartlyUnknown(text) if placeholders.rendered() != before else text
        except UnknownValue:
            return Unknown(f"unknown: {value.strip()}")
        except SmlplayError as exc:
            if exc.pos is None:
                exc.pos = pos
            raise
        except Exception as exc:
            raise self._error(exc, value, pos) from None

    def _error(self, exc: Exception, source: str, pos: Position | None) -> TemplateError:
        if isinstance(exc, TemplateSyntaxError):
            return TemplateError(f"template syntax error in '{source}': {exc.message}", pos=pos)
        kind = UndefinedVariableError if isinstance(exc, UndefinedError) else TemplateError
        return kind(f"cannot render '{source}': {_describe(exc)}", pos=pos)


_SINGLE: dict[str, str | None] = {}


def _single_expression(value: str) -> str | None:
    """The expression of a value that is exactly one ``{{ expr }}``, else None: a regex
    match once per distinct text (the same task values render on every host)."""
    try:
        return _SINGLE[value]
    except KeyError:
        pass
    match = _SINGLE_EXPR.match(value)
    if len(_SINGLE) >= 20_000:  # texts made at run time must not grow it without bound
        _SINGLE.clear()
    found = _SINGLE[value] = match.group("expr") if match else None
    return found


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


def check_bare_expression(
    expr: Any, *, keyword: str, pos: Position | None, error: type[SmlplayError] = TemplateError
) -> None:
    """``when``/``until``/``changed_when``/``failed_when`` take a bare expression; like
    Ansible, reject templating delimiters in them (the loader calls this before any run)."""
    text = str(expr)
    if "{{" in text or "{%" in text:
        raise error(
            f"'{keyword}' is a bare expression; remove the {{{{ }}}} around it",
            pos=pos,
            hint=f"write  {keyword}: {text.strip().strip('{}').strip()}",
        )


def _describe(exc: Exception) -> str:
    if isinstance(exc, SecurityError):
        return f"unsafe template: {exc} (templates run in a sandbox and cannot reach Python internals)"
    if isinstance(exc, UndefinedError):
        return f"undefined variable: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _template_line(exc: BaseException, filename: str, template: Any) -> int | None:
    """The template line of the innermost frame of compiled template code."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename and template is not None:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


_PLAIN_LEAVES = (int, bool, float, type(None))  # render() returns these as they are


def _value_pos(container: Any, key: Any, default: Position | None) -> Position | None:
    table = getattr(container, "value_pos", None)
    return table.get(key, default) if table else default


def _item_pos(container: Any, index: int, default: Position | None) -> Position | None:
    table = getattr(container, "item_pos", None)
    return table[index] if table and index < len(table) else default


class _Context(Context):
    """Jinja's context, with one scope probe per variable: the stock one asks the parent
    ``in`` and then ``[]``, and each of those probed the scope and then the globals."""

    def resolve_or_missing(self, key: str) -> Any:
        if key in self.vars:
            return self.vars[key]
        parent = self.parent
        if type(parent) is _Scope:
            return parent.get_or_missing(key)
        return super().resolve_or_missing(key)

    @classmethod
    def for_expression(cls, template: Any, parent: _Scope, eval_ctx: EvalContext) -> _Context:
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


def _new_context(template: Any, scope: Mapping[str, Any], globals_: Mapping[str, Any]) -> _Context:
    """``template.new_context(_Scope(scope, globals_), shared=True)`` without copying the
    globals' names into a set per render: Jinja reads that set only for ``{% import %}``,
    where it adds nothing the template's own globals (the same environment's) lack."""
    return _Context(template.environment, _Scope(scope, globals_), template.name, template.blocks)  # type: ignore[arg-type]


class _Scope(Mapping[str, Any]):
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


__all__ = ["PartlyUnknown", "Templar", "Unknown", "UnknownValue", "check_bare_expression", "nodes"]
