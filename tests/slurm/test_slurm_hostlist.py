"""engine.slurm.hostlist: Slurm node-list syntax in both directions."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ValidationError
from engine.slurm.hostlist import compress, expand, sort_key


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("nid[001-004,007]", ["nid001", "nid002", "nid003", "nid004", "nid007"]),
        ("gpu-[1-2]x", ["gpu-1x", "gpu-2x"]),
        ("a[1-2],b3", ["a1", "a2", "b3"]),
        ("n1", ["n1"]),
        ("n[9-11]", ["n9", "n10", "n11"]),
        ("n[08,9]", ["n08", "n9"]),
        ("n[3,1]", ["n3", "n1"]),  # the written order, as scontrol show hostnames
        ("n[1-2],n1", ["n1", "n2"]),
        ("a[1-2]b[3-4]", ["a1b3", "a1b4", "a2b3", "a2b4"]),
        ("n1 n2", ["n1", "n2"]),
        ("n1, n2", ["n1", "n2"]),
        ("", []),
        ("(null)", []),
        ("None assigned", []),
        ("login", ["login"]),
    ],
)
def test_expand(expr: str, names: list[str]) -> None:
    assert expand(expr) == names


@pytest.mark.parametrize(
    ("names", "expr"),
    [
        (["nid001", "nid002", "nid003", "nid004", "nid007"], "nid[001-004,007]"),
        (["gpu-2x", "gpu-1x"], "gpu-[1-2]x"),
        (["b3", "a2", "a1"], "a[1-2],b3"),
        (["n10", "n9", "n11", "n9"], "n[9-11]"),
        (["n1"], "n1"),
        ([], ""),
        (["login", "n1"], "login,n1"),
    ],
)
def test_compress(names: list[str], expr: str) -> None:
    assert compress(names) == expr


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("n[1-2", "unbalanced brackets"),
        ("n1-2]", "unbalanced brackets"),
        ("n[[1]]", "nested brackets"),
        ("n[2-1]", "start > stop"),
        ("n[a]", "bad range"),
        ("n[]", "bad range"),
        ("n1,,n2", "empty element"),
        (",n1", "empty element"),
    ],
)
def test_expand_rejects_bad_syntax_with_a_clear_message(expr: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        expand(expr)
    assert message in str(info.value)
    assert repr(expr) in str(info.value)


@pytest.mark.parametrize("name", ["n[1]", "a,b", "", "n 1"])
def test_compress_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValidationError):
        compress([name])


def test_sort_key_is_numeric() -> None:
    assert sorted(["n10", "n2", "n1"], key=sort_key) == ["n1", "n2", "n10"]


# --------------------------------------------------------------------------- properties

_prefix = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=6).filter(
    lambda s: s[0] != "-"
)
_suffix = st.text("xyz-", max_size=2)


@st.composite
def _range_group(draw: st.DrawFn) -> tuple[str, str, int, list[tuple[int, int]]]:
    """A prefix, suffix, zero-padding width and sorted, disjoint, non-adjacent ranges."""
    prefix = draw(_prefix)
    suffix = draw(_suffix)
    width = draw(st.integers(1, 4))
    limit = 10**width - 1 if width > 1 else 200
    starts = draw(st.lists(st.integers(0, limit), min_size=1, max_size=5, unique=True))
    ranges: list[tuple[int, int]] = []
    for start in sorted(starts):
        if ranges and start <= ranges[-1][1] + 1:
            continue  # keep ranges non-adjacent so the canonical form is unique
        end = min(limit, start + draw(st.integers(0, 6)))
        ranges.append((start, end))
    ranges = [r for i, r in enumerate(ranges) if i == 0 or r[0] > ranges[i - 1][1] + 1]
    return prefix, suffix, width, ranges


def _render_group(prefix: str, suffix: str, width: int, ranges: list[tuple[int, int]]) -> str:
    parts = [f"{a:0{width}d}" if a == b else f"{a:0{width}d}-{b:0{width}d}" for a, b in ranges]
    if len(parts) == 1 and ranges[0][0] == ranges[0][1]:
        return f"{prefix}{parts[0]}{suffix}"
    return f"{prefix}[{','.join(parts)}]{suffix}"


@st.composite
def canonical_hostlists(draw: st.DrawFn) -> str:
    """Hostlists in the canonical form compress() produces: one group per (prefix, suffix),
    each group's ranges ascending with zero padding, groups sorted by their text."""
    groups = draw(st.lists(_range_group(), min_size=1, max_size=3))
    seen: dict[tuple[str, str], tuple[str, str, int, list[tuple[int, int]]]] = {}
    for group in groups:
        seen.setdefault((group[0], group[1]), group)
    return ",".join(sorted(_render_group(*g) for g in seen.values()))


_names = st.lists(
    st.builds(
        lambda p, n, w, s: f"{p}{n:0{w}d}{s}",
        _prefix,
        st.integers(0, 150),
        st.integers(1, 3),
        _suffix,
    )
    | _prefix,
    max_size=30,
)


@given(canonical_hostlists())
def test_compress_inverts_expand_for_canonical_hostlists(expr: str) -> None:
    assert compress(expand(expr)) == expr


@given(_names)
def test_expand_inverts_compress(names: list[str]) -> None:
    out = expand(compress(names))
    assert sorted(out) == sorted(set(names))
    assert len(out) == len(set(out))


@given(_names, st.randoms())
def test_compress_is_canonical_whatever_the_input_order(names: list[str], rnd: Random) -> None:
    shuffled = list(names)
    rnd.shuffle(shuffled)
    assert compress(shuffled) == compress(names)
    assert compress(expand(compress(names))) == compress(names)


@given(st.lists(st.integers(0, 999), min_size=1, max_size=40, unique=True), st.integers(1, 4))
def test_expand_of_compress_is_numerically_sorted_for_one_prefix(
    numbers: list[int], width: int
) -> None:
    names = [f"nid{n:0{width}d}" for n in numbers]
    assert expand(compress(names)) == sorted(set(names), key=sort_key)
