"""Slurm hostlist expressions: ``nid[001-004,007]`` <-> ``["nid001", ..., "nid007"]``.

Slurm prints node sets compressed (``SLURM_JOB_NODELIST``, ``squeue``), while the engine
addresses one node at a time (``srun --nodelist NODE``), so both directions are needed.
Parsing is delegated to ``python-hostlist`` (the LLNL/NSC implementation that follows
Slurm's syntax, zero padding included); this module only pins down the contract and turns
its ``BadHostlist`` into a :class:`~engine.errors.ValidationError` that says what is wrong.

Compared with ``scontrol show hostnames`` this works without a Slurm installation, which
matters for ``--check`` runs and for rendering commands on a laptop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import hostlist as _hl

from engine.errors import ValidationError

__all__ = ["compress", "expand", "sort_key"]

# Whitespace never appears in a node name; Slurm reads it as a separator, python-hostlist
# would keep it as part of a name.
_WHITESPACE = re.compile(r"\s+")
_SEPARATOR = re.compile(r"\s*,\s*|\s+")


def expand(expr: str) -> list[str]:
    """Expand a Slurm hostlist expression into node names, in the order written.

    ``"nid[001-004,007]"`` -> ``nid001 nid002 nid003 nid004 nid007``;
    ``"gpu-[1-2]x"`` -> ``gpu-1x gpu-2x``; ``"a[1-2],b3"`` -> ``a1 a2 b3``.
    Whitespace separates names like a comma (as in Slurm). Duplicates are dropped: a node
    set never has them, although ``scontrol show hostnames`` would repeat them. The empty
    string and Slurm's ``(null)`` / ``None assigned`` expand to ``[]`` (a pending job).

    Unlike Slurm 22.05 this accepts a suffix after the brackets (``gpu-[1-2]x``), which
    sites with such names configure and newer Slurm versions accept.
    """
    text = expr.strip()
    if text in ("", "(null)", "None assigned"):
        return []
    text = _SEPARATOR.sub(",", text)
    if ",," in text or text.startswith(",") or text.endswith(","):
        raise ValidationError(f"invalid hostlist {expr!r}: empty element between commas")
    try:
        names: list[str] = _hl.expand_hostlist(text)
    except _hl.BadHostlist as exc:
        raise ValidationError(
            f"invalid hostlist {expr!r}: {exc}",
            hint="Slurm syntax is PREFIX[RANGES]SUFFIX, e.g. nid[001-004,007] or a[1-2],b3",
        ) from None
    if any(n == "" for n in names):
        raise ValidationError(f"invalid hostlist {expr!r}: it contains an empty node name")
    return names


def compress(names: Iterable[str]) -> str:
    """Compress node names into the canonical Slurm hostlist expression.

    The result is sorted and free of duplicates, and zero padding is kept per name:
    ``["n01", "n02", "n10"]`` -> ``"n[01-02,10]"``. An empty input gives ``""``.
    """
    items = list(names)
    for name in items:
        if not isinstance(name, str) or not name:
            raise ValidationError(f"invalid node name {name!r}: it is empty")
        if _WHITESPACE.search(name):
            raise ValidationError(f"invalid node name {name!r}: it contains whitespace")
    try:
        result: str = _hl.collect_hostlist(items)
    except _hl.BadHostlist as exc:
        bad = [n for n in items if re.search(r"[\[\],]", n)]
        raise ValidationError(
            f"invalid node name(s) {bad or items!r}: {exc}",
            hint="a node name cannot contain ',', '[' or ']'",
        ) from None
    return result


def sort_key(name: str) -> list[str | int]:
    """Order node names the way people expect: ``n2`` before ``n10``."""
    key: list[str | int] = _hl.numeric_sort_key(name)
    return key
