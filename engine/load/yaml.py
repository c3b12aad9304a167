"""YAML loading that remembers where every value came from.

Every mapping and sequence is loaded as :class:`YMap` / :class:`YList` (plain ``dict`` /
``list`` subclasses) that carry the :class:`~engine.errors.Position` of the node and of each
key and item, and every string as :class:`YStr` with its own position. Validation errors can
then point at the offending field, not just at the task.

Two deliberate departures from PyYAML's defaults, both long-standing Ansible complaints:
duplicate keys are an error (PyYAML keeps the last silently; keys merged in with ``<<:`` may
still be overridden, as in PyYAML), and only ``true``/``false`` are booleans (YAML 1.1's
``yes``/``no``/``on``/``off`` stay strings: the "Norway problem").
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Position, ValidationError

try:  # the C scanner is ~5x faster; marks are the same
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


class YMap(dict[Any, Any]):
    """A mapping with the position of the mapping, of each key and of each value."""

    pos: Position
    key_pos: dict[Any, Position]
    value_pos: dict[Any, Position]

    def position_of(self, key: Any, *, value: bool = True) -> Position:
        table = self.value_pos if value else self.key_pos
        return table.get(key, self.pos)


class YList(list[Any]):
    """A sequence with the position of the sequence and of each item."""

    pos: Position
    item_pos: list[Position]

    def position_of(self, index: int) -> Position:
        if 0 <= index < len(self.item_pos):
            return self.item_pos[index]
        return self.pos


class YStr(str):
    """A string that knows where it was written."""

    pos: Position


def position_of(node: Any) -> Position | None:
    return getattr(node, "pos", None)


def _mark(file: str, mark: Any) -> Position:
    return Position(file, mark.line + 1, mark.column + 1)


_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_BOOL_FIRST = list("tTfF")
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(_BaseLoader):
    """SafeLoader with positions, duplicate-key detection and YAML 1.2 booleans."""

    filename = "<string>"

    def construct_yaml_map(self, node: yaml.MappingNode) -> Any:
        data = YMap()
        data.pos = _mark(self.filename, node.start_mark)
        data.key_pos = {}
        data.value_pos = {}
        yield data
        # flatten_mapping puts the pairs merged in by `<<:` first, then the explicit ones.
        # Like PyYAML, later pairs win: explicit keys override merged ones, and a key from
        # an earlier mapping of `<<: [*a, *b]` overrides the later one. Only an explicit
        # key written twice is a duplicate.
        explicit = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
        self.flatten_mapping(node)
        first_explicit = len(node.value) - explicit
        explicit_keys: set[Any] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                raise ValidationError(
                    "a mapping key must be a scalar", pos=_mark(self.filename, key_node.start_mark)
                )
            if index >= first_explicit:
                if key in explicit_keys:
                    first = data.key_pos[key]
                    raise ValidationError(
                        f"duplicate key {key!r} (first defined at line {first.line})",
                        pos=_mark(self.filename, key_node.start_mark),
                        hint="YAML keeps only one value per key; remove or rename one of them",
                    )
                explicit_keys.add(key)
            data[key] = self.construct_object(value_node, deep=True)
            data.key_pos[key] = _mark(self.filename, key_node.start_mark)
            data.value_pos[key] = _mark(self.filename, value_node.start_mark)

    def construct_yaml_seq(self, node: yaml.SequenceNode) -> Any:
        data = YList()
        data.pos = _mark(self.filename, node.start_mark)
        data.item_pos = [_mark(self.filename, child.start_mark) for child in node.value]
        yield data
        data.extend(self.construct_object(child, deep=True) for child in node.value)

    def construct_yaml_str(self, node: yaml.ScalarNode) -> Any:
        value = YStr(self.construct_scalar(node))
        value.pos = _mark(self.filename, node.start_mark)
        return value


# Rebuild the implicit resolvers without YAML 1.1 booleans, then add YAML 1.2's.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_RE, _BOOL_FIRST)
_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq)
_Loader.add_constructor("tag:yaml.org,2002:str", _Loader.construct_yaml_str)


def loads(text: str, filename: str = "<string>") -> Any:
    """Parse one YAML document, keeping positions. Raises :class:`ValidationError`."""
    loader = _Loader(text)
    loader.filename = filename
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = _mark(filename, mark) if mark is not None else Position(filename, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ValidationError(f"YAML syntax error: {problem}", pos=pos) from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"YAML error: {exc}", pos=Position(filename, 1, 1)) from None
    finally:
        loader.dispose()


def load_file(path: str | Path, *, pos: Position | None = None) -> Any:
    """Load a YAML file; a missing or unreadable file is a :class:`ValidationError` at
    ``pos`` (where the file was named, e.g. a ``vars_files`` entry)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"file not found: {p}", pos=pos) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {p}: {exc}", pos=pos) from None
    except ValueError:  # a NUL character: no file can have that name
        raise ValidationError(f"not a file name: {str(path)!r} (it contains a NUL character)", pos=pos) from None
    return loads(text, str(p))


def plain(value: Any) -> Any:
    """Strip position wrappers: a deep copy made of plain dict/list/str (for JSON, records)."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, YStr):
        return str(value)
    return value
