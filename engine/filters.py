"""Jinja2 filters: the everyday Ansible set plus domain filters (Slurm host lists).

Each filter is a plain function; :data:`FILTERS` is what :mod:`engine.jinja_env` installs.
Jinja's built-ins already cover ``join``, ``map``, ``select``, ``selectattr``,
``rejectattr``, ``unique``, ``int``, ``default``/``d`` (without Ansible's falsy variant,
which ``default`` below restores).
"""

from __future__ import annotations

import base64
import json
import os.path
import re
import shlex
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
from jinja2 import Undefined
from jinja2.exceptions import FilterArgumentError

from engine import serving
from engine.errors import TemplateError
from engine.placeholders import plain


def default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    from engine.template import Unknown

    if isinstance(value, Unknown):
        return value  # known at run time; a dry-run shows the placeholder
    if isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


def mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, Undefined):
        raise TemplateError(msg or f"mandatory variable not defined: {value._undefined_message}")
    return value


_TRUE = {"true", "1", "y", "yes", "on"}
_FALSE = {"false", "0", "n", "no", "off", ""}


def to_bool(value: Any) -> bool:
    """Explicit conversion: here ``yes``/``on`` are accepted because the user asked for it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FilterArgumentError(f"cannot interpret {value!r} as a boolean")


def to_json(value: Any, **kw: Any) -> str:
    return json.dumps(plain(value), sort_keys=kw.pop("sort_keys", False), **kw)


def to_nice_json(value: Any, indent: int = 4, **kw: Any) -> str:
    return json.dumps(plain(value), indent=indent, sort_keys=True, **kw)


def to_yaml(value: Any, **kw: Any) -> str:
    return yaml.safe_dump(plain(value), default_flow_style=kw.pop("default_flow_style", None), **kw)


def to_nice_yaml(value: Any, indent: int = 2, **kw: Any) -> str:
    return yaml.safe_dump(plain(value), indent=indent, default_flow_style=False, sort_keys=False, **kw)


def from_yaml(value: str) -> Any:
    from engine.load.yaml import loads, plain

    return plain(loads(value, "<from_yaml>"))


def combine(*dicts: Mapping[str, Any], recursive: bool = False, list_merge: str = "replace") -> dict[str, Any]:
    result: dict[str, Any] = {}
    for d in dicts:
        if isinstance(d, list):  # combine(list_of_dicts)
            for item in d:
                result = combine(result, item, recursive=recursive, list_merge=list_merge)
            continue
        for key, value in d.items():
            old = result.get(key)
            if recursive and isinstance(old, Mapping) and isinstance(value, Mapping):
                result[key] = combine(old, value, recursive=True, list_merge=list_merge)
            elif list_merge == "append" and isinstance(old, list) and isinstance(value, list):
                result[key] = old + value
            else:
                result[key] = value
    return result


def regex_replace(value: Any, pattern: str, replacement: str = "", ignorecase: bool = False, count: int = 0) -> str:
    flags = re.IGNORECASE if ignorecase else 0
    return re.sub(pattern, replacement, str(value), count=count, flags=flags)


def regex_search(value: Any, pattern: str, *groups: str, ignorecase: bool = False) -> Any:
    flags = re.IGNORECASE if ignorecase else 0
    match = re.search(pattern, str(value), flags)
    if not match:
        return None
    if not groups:
        return match.group(0)
    out = []
    for g in groups:
        if g.startswith("\\g<"):
            out.append(match.group(g[3:-1]))
        elif g.startswith("\\"):
            out.append(match.group(int(g[1:])))
    return out


def regex_findall(value: Any, pattern: str, ignorecase: bool = False) -> list[Any]:
    return re.findall(pattern, str(value), re.IGNORECASE if ignorecase else 0)


def quote(value: Any) -> str:
    return shlex.quote(str(value))


def b64encode(value: Any, encoding: str = "utf-8") -> str:
    return base64.b64encode(str(value).encode(encoding)).decode("ascii")


def b64decode(value: Any, encoding: str = "utf-8") -> str:
    return base64.b64decode(str(value)).decode(encoding)


def flatten(value: Iterable[Any], levels: int | None = None) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if isinstance(item, list | tuple) and (levels is None or levels > 0):
            out.extend(flatten(item, None if levels is None else levels - 1))
        elif item is not None:
            out.append(item)
    return out


def dict2items(value: Mapping[str, Any], key_name: str = "key", value_name: str = "value") -> list[dict[str, Any]]:
    return [{key_name: k, value_name: v} for k, v in value.items()]


def items2dict(value: Iterable[Mapping[str, Any]], key_name: str = "key", value_name: str = "value") -> dict[Any, Any]:
    return {item[key_name]: item[value_name] for item in value}


def ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def union(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    return unique(list(a) + list(b))


def difference(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    other = list(b)
    return [x for x in unique(a) if x not in other]


def intersect(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    other = list(b)
    return [x for x in unique(a) if x in other]


def unique(value: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if item not in out:
            out.append(item)
    return out


def hostlist_expand(value: Any) -> list[str]:
    from engine.slurm.hostlist import expand

    if isinstance(value, list | tuple):
        return [h for item in value for h in expand(str(item))]
    return expand(str(value))


def hostlist_compress(value: Any) -> str:
    from engine.slurm.hostlist import compress

    return compress([str(v) for v in ([value] if isinstance(value, str) else value)])


def extract(key: Any, container: Any, morekeys: Any = None) -> Any:
    """Ansible's ``extract``: ``groups.prefill | map('extract', hostvars, 'node_address')``."""
    value = container[key]
    for k in [] if morekeys is None else (morekeys if isinstance(morekeys, list) else [morekeys]):
        value = value[k]
    return value


# place_workers(hostvars=...) results per run (the runner behind hostvars): every host of a
# group places the same workers, and looking up each node's address through hostvars on
# every host is quadratic in nodes. Node addresses do not change once allocated.
_PLACEMENTS: weakref.WeakKeyDictionary[Any, dict[tuple[tuple[str, ...], str], list[dict[str, Any]]]] = weakref.WeakKeyDictionary()


def place_workers(hosts: Any, spec: Any, *, hostvars: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`engine.serving.place_workers`; with ``hostvars``, ports are per node address
    (each host's ``node_address``) and the placement is computed once per run."""
    if hostvars is None:
        return serving.place_workers(hosts, spec, **kwargs)
    from engine.frozen import Known, freeze

    hosts = list(hosts)
    owner = getattr(hostvars, "_runner", None)
    cache = _PLACEMENTS.setdefault(owner, {}) if owner is not None else {}
    key = (tuple(hosts), json.dumps([spec, sorted(kwargs.items())], sort_keys=True, default=str))
    if key not in cache:
        addresses = [hostvars[h]["node_address"] for h in hosts]
        # one read-only object that every host of the group references (copying it per
        # host, and walking each copy, was quadratic in nodes)
        cache[key] = freeze(serving.place_workers(hosts, spec, addresses=addresses, **kwargs))
    placed = cache[key]
    if isinstance(placed, Known):
        return placed
    return [{**w, "hosts": list(w["hosts"])} for w in placed]  # holds a placeholder: a copy each


FILTERS: dict[str, Callable[..., Any]] = {
    "extract": extract,
    "place_workers": place_workers,
    "nodes_for": serving.nodes_for,
    "merge_flags": serving.merge_flags,
    "render_flags": serving.render_flags,
    "allocation_layout": serving.allocation_layout,
    "ranks_on": serving.ranks_on,
    "worker_endpoints": serving.worker_endpoints,
    "profile_targets": serving.profile_targets,
    "profile_summary": serving.profile_summary,
    "nsys_prefix": serving.nsys_prefix,
    "default": default,
    "d": default,
    "mandatory": mandatory,
    "bool": to_bool,
    "to_json": to_json,
    "to_nice_json": to_nice_json,
    "from_json": json.loads,
    "to_yaml": to_yaml,
    "to_nice_yaml": to_nice_yaml,
    "from_yaml": from_yaml,
    "combine": combine,
    "regex_replace": regex_replace,
    "regex_search": regex_search,
    "regex_findall": regex_findall,
    "quote": quote,
    "b64encode": b64encode,
    "b64decode": b64decode,
    "basename": os.path.basename,
    "dirname": os.path.dirname,
    "flatten": flatten,
    "dict2items": dict2items,
    "items2dict": items2dict,
    "ternary": ternary,
    "union": union,
    "difference": difference,
    "intersect": intersect,
    "unique": unique,
    "hostlist_expand": hostlist_expand,
    "hostlist_compress": hostlist_compress,
}
