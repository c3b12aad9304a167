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
from typing import TYPE_CHECKING, Any

from engine import placeholders
from engine.errors import Position, SmlplayError, TemplateError
from engine.load.yaml import position_of
from engine.placeholders import PartlyUnknown, Unknown, UnknownValue

if TYPE_CHECKING:
    import jinja2

_SINGLE_EXPR = re.compile(r"^\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\Z", re.DOTALL)  # \Z: "{{ x }}\n" keeps its newline


#: YAML 1.1 booleans, which are plain strings here (see engine.load.yaml).
_YAML11_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n"})


class Templar:
    """Renders values, expressions and template files against a variable scope.

    Compiled templates are cached by source text: the same task renders on every host, so
    compiling once is most of the speed-up Ansible lost by re-templating everything.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Any] = {}
        self._sources: dict[Path, tuple[tuple[int, int, int], str]] = {}
        self._lock = threading.Lock()
        # Jinja's side (engine.jinja_env and the environments), made on the first template:
        # a playbook of plain values never imports Jinja2 (see engine.jinja_env)
        self._j: Any = None
        self._env: Any = None
        self._file_env: Any = None
        self._expr_eval_ctx: Any = None

    def _jinja(self) -> Any:
        """:mod:`engine.jinja_env`, with this templar's environments built on first use."""
        with self._lock:
            if self._j is None:
                from engine import jinja_env

                self._env = jinja_env.build_env()
                # template files: a block tag's own newline is dropped (Ansible's trim_blocks)
                self._file_env = self._env.overlay(trim_blocks=True)
                # an expression has no statements that could change its evaluation context
                # (``{% autoescape %}``): all of them share one
                self._expr_eval_ctx = jinja_env.EvalContext(self._env)
                self._j = jinja_env
        return self._j

    @property
    def env(self) -> jinja2.Environment:
        """The sandboxed environment values and expressions render in."""
        if self._j is None:
            self._jinja()
        return self._env

    @property
    def file_env(self) -> jinja2.Environment:
        """The environment of template files (``trim_blocks``)."""
        if self._j is None:
            self._jinja()
        return self._file_env

    # -- compilation -------------------------------------------------------------------
    def _compiled(self, kind: str, source: str) -> Any:
        key = (kind, source)
        cached = self._cache.get(key)
        if cached is None:
            env, j = self.env, self._j
            if kind == "expr":
                cached = env.compile_expression(j.literal_backslashes(env, source, bare=True))._template
            else:
                cached = env.from_string(j.literal_backslashes(env, source))
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
        j = self._j or self._jinja()
        try:
            template = self._compiled("expr", source)
            ctx = j.Context.for_expression(template, j.Scope(scope, self._env.globals), self._expr_eval_ctx)
            before = placeholders.rendered()
            j.consume(template.root_render_func(ctx))
            result = ctx.vars["result"]
            if isinstance(result, j.Undefined):
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
            raise j.error_for(exc, source, position_of(expr) or pos) from None

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
        j = self._j or self._jinja()
        try:
            env = self._file_env
            template = self._compiled_file(path, source)
            ctx = j.new_context(template, scope, env.globals)
            return str(env.concat(template.root_render_func(ctx)))
        except UnknownValue:
            raise
        except SmlplayError as exc:
            if exc.pos is None:  # raised by a filter: point at the template line
                exc.pos = Position(str(path), _template_line(exc, str(path), locals().get("template")) or 1, 1)
            raise
        except j.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error: {exc.message}", pos=Position(str(path), exc.lineno, 1)
            ) from None
        except Exception as exc:
            line = _template_line(exc, str(path), locals().get("template")) or 1
            raise TemplateError(
                f"in template: {j.describe(exc)}", pos=Position(str(path), line, 1)
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
        j = self._j or self._jinja()
        try:
            template = self._compiled("str", value)
            env = self._env
            ctx = j.new_context(template, scope, env.globals)
            before = placeholders.rendered()
            text = str(env.concat(template.root_render_func(ctx)))
            return PartlyUnknown(text) if placeholders.rendered() != before else text
        except UnknownValue:
            return Unknown(f"unknown: {value.strip()}")
        except SmlplayError as exc:
            if exc.pos is None:
                exc.pos = pos
            raise
        except Exception as exc:
            raise j.error_for(exc, value, pos) from None


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


__all__ = ["PartlyUnknown", "Templar", "Unknown", "UnknownValue", "check_bare_expression"]
