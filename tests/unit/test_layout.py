"""engine.schedulers.layout.Layout: reading ``layout:`` and splitting nodes into groups."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ValidationError
from engine.schedulers.layout import Layout, Slot

NODES = [f"n{i}" for i in range(1, 9)]


# ----------------------------------------------------------------------------- from_vars


@pytest.mark.parametrize("data", [None, {}])
def test_no_layout(data: Any) -> None:
    layout = Layout.from_vars(data)
    assert layout.slots == () and layout.nodes_needed == 0
    assert layout.assign(["n1", "n2"]) == {}


def test_slots_keep_the_written_order() -> None:
    layout = Layout.from_vars(
        {"prefill": 2, "decode": 1, "router": {"count": 1, "on": "prefill"}, "bench": {"on": "router"}}
    )
    assert layout.slots == (
        Slot("prefill", 2),
        Slot("decode", 1),
        Slot("router", 1, "prefill"),
        Slot("bench", 1, "router"),  # count defaults to 1
    )
    assert layout.nodes_needed == 3  # shared groups take no node of their own


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "layout must be a mapping"),
        ("prefill", "layout must be a mapping"),
        ({"all": 1}, "'all' is not a usable group name"),
        ({"ungrouped": 1}, "'ungrouped' is not a usable group name"),
        ({"1st": 1}, "'1st' is not a usable group name"),
        ({"a-b": 1}, "'a-b' is not a usable group name"),
        ({"with space": 1}, "is not a usable group name"),
        ({"a": -1}, "count must be a non-negative integer, not -1"),
        ({"a": True}, "count must be a non-negative integer, not True"),
        ({"a": "2"}, "count must be a non-negative integer, not '2'"),
        ({"a": 1.5}, "count must be a non-negative integer"),
        ({"a": None}, "count must be a non-negative integer"),
        ({"a": {"count": False}}, "count must be a non-negative integer"),
        ({"a": {"count": 1, "where": "x"}}, "unknown field(s) where"),
        ({"a": {"on": "b"}, "b": 1}, "shares nodes with 'b', which is not an earlier group"),
        ({"a": {"on": "a"}}, "shares nodes with 'a', which is not an earlier group"),
        ({"a": 1, "b": {"on": "zzz"}}, "earlier groups: a"),
        ({"a": 1, "b": {"count": 2, "on": "a"}}, "wants 2 node(s) of 'a', which has 1"),
        ({"a": 2, "b": {"count": 2, "on": "a"}, "c": {"count": 3, "on": "b"}}, "wants 3 node(s) of 'b'"),
    ],
)
def test_invalid_layouts(data: Any, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Layout.from_vars(data)
    assert message in str(info.value)


def test_the_group_of_all_nodes_is_reserved() -> None:
    # slurm_allocate puts every node in the group ``nodes`` besides the layout's groups
    with pytest.raises(ValidationError, match="'nodes' is not a usable group name"):
        Layout.from_vars({"prefill": 1, "nodes": 1})


# ----------------------------------------------------------------------------- assign


def test_groups_take_nodes_top_to_bottom() -> None:
    layout = Layout.from_vars({"prefill": 2, "decode": 1, "router": {"count": 1, "on": "prefill"}})
    assert layout.assign(["n3", "n1", "n2"]) == {
        "prefill": ["n3", "n1"],  # allocation order, not sorted
        "decode": ["n2"],
        "router": ["n3"],
    }


def test_shared_groups_chain_and_take_the_first_nodes() -> None:
    layout = Layout.from_vars(
        {
            "prefill": 3,
            "router": {"count": 2, "on": "prefill"},
            "bench": {"count": 1, "on": "router"},
            "decode": 1,
        }
    )
    groups = layout.assign(NODES[:4])
    assert groups == {
        "prefill": ["n1", "n2", "n3"],
        "router": ["n1", "n2"],
        "bench": ["n1"],
        "decode": ["n4"],
    }


def test_extra_nodes_are_left_out_of_the_layout_groups() -> None:
    layout = Layout.from_vars({"a": 1, "b": {"count": 0, "on": "a"}, "c": 0})
    assert layout.nodes_needed == 1
    assert layout.assign(NODES[:3]) == {"a": ["n1"], "b": [], "c": []}


def test_too_few_nodes() -> None:
    layout = Layout.from_vars({"prefill": 2, "decode": 2})
    with pytest.raises(ValidationError, match="needs 4 node\\(s\\) but the allocation has 3"):
        layout.assign(NODES[:3])


def test_assign_does_not_alias_lists() -> None:
    layout = Layout.from_vars({"a": 2, "b": {"count": 2, "on": "a"}})
    groups = layout.assign(["n1", "n2"])
    groups["b"].append("x")
    assert groups["a"] == ["n1", "n2"]


# ----------------------------------------------------------------------------- property


@st.composite
def layouts(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, int]]:
    """A valid ``layout:`` mapping (fresh and shared groups, shares of shares) and the
    size of each group."""
    data: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    for i in range(draw(st.integers(0, 7))):
        name = f"g{i}"
        if sizes and draw(st.booleans()):
            on = draw(st.sampled_from(sorted(sizes)))
            count = draw(st.integers(0, sizes[on]))
            data[name] = {"count": count, "on": on} if draw(st.booleans()) or count != 1 else {"on": on}
        else:
            count = draw(st.integers(0, 4))
            data[name] = count
        sizes[name] = count
    return data, sizes


@settings(max_examples=300, deadline=None)
@given(layouts(), st.integers(0, 4))
def test_assign_property(spec: tuple[dict[str, Any], dict[str, int]], extra: int) -> None:
    data, sizes = spec
    layout = Layout.from_vars(data)
    nodes = [f"node{i}" for i in range(layout.nodes_needed + extra)]
    groups = layout.assign(nodes)
    assert list(groups) == list(data)  # every group, in the written order
    fresh = [s for s in layout.slots if s.on is None]
    taken: list[str] = []
    for slot in layout.slots:
        members = groups[slot.group]
        assert len(members) == sizes[slot.group]
        assert len(set(members)) == len(members), f"{slot.group} got a node twice: {members}"
        assert set(members) <= set(nodes)
        if slot.on is None:
            taken += members
        else:
            assert set(members) <= set(groups[slot.on]), f"{slot.group} is not inside {slot.on}"
    # fresh groups never share a node and together take exactly the first nodes_needed
    assert len(taken) == len(set(taken)) == sum(s.count for s in fresh) == layout.nodes_needed
    assert taken == nodes[: layout.nodes_needed]
