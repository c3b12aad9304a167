"""engine.serving: worker placement, allocation layout and flag merging."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import SmlplayError, TemplateError, ValidationError
from engine.serving import (
    allocation_layout,
    merge_flags,
    nodes_for,
    place_workers,
    ranks_on,
    render_flags,
    worker_endpoints,
)


def test_small_workers_share_a_node_on_distinct_gpus() -> None:
    workers = place_workers(["n1"], {"workers": 2, "tp": 4}, role="prefill", gpus_per_node=8, port=30000, bootstrap_port=8998)
    assert [(w["name"], w["hosts"], w["gpus"], w["port"], w["bootstrap_port"]) for w in workers] == [
        ("prefill-0", ["n1"], "0,1,2,3", 30000, 8998),
        ("prefill-1", ["n1"], "4,5,6,7", 30001, 8999),
    ]


def test_a_large_worker_spans_nodes_with_ranks() -> None:
    workers = place_workers(["a", "b", "c", "d"], {"workers": 2, "tp": 16}, role="decode", gpus_per_node=8, port=31000, dist_port=29600)
    assert [w["hosts"] for w in workers] == [["a", "b"], ["c", "d"]]
    assert workers[1]["dist_port"] == 29601 and workers[1]["nnodes"] == 2
    assert ranks_on(workers, "d") == [{**workers[1], "rank": 1}]
    assert ranks_on(workers, "zz") == []


def test_too_few_nodes_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="need 4 node"):
        place_workers(["a", "b", "c"], {"workers": 2, "tp": 16}, role="decode", gpus_per_node=8, port=1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"workers": 1, "tp": 16, "nodes_per_worker": 1}, "does not fit"),
        ({"workers": 1, "tp": 8, "gpu": 1}, "unknown worker group field"),
        ({"workers": 1, "tp": 0}, "tp must be a positive"),
        ({"workers": 1, "tp": 12, "nodes_per_worker": 5}, "does not split evenly"),
    ],
)
def test_bad_worker_groups(spec: dict[str, int], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        nodes_for(spec, 8)


@given(workers=st.integers(0, 6), tp=st.sampled_from([1, 2, 4, 8, 16, 32]), gpus=st.sampled_from([2, 4, 8]))
def test_placement_never_oversubscribes_gpus(workers: int, tp: int, gpus: int) -> None:
    spec = {"workers": workers, "tp": tp}
    hosts = [f"n{i}" for i in range(nodes_for(spec, gpus))]
    placed = place_workers(hosts, spec, role="workers", gpus_per_node=gpus, port=1000)
    used: dict[str, list[int]] = {}
    for w in placed:
        assert len(w["hosts"]) * len(w["gpus"].split(",")) == tp
        for h in w["hosts"]:
            used.setdefault(h, []).extend(int(g) for g in w["gpus"].split(","))
    for ids in used.values():
        assert len(ids) == len(set(ids)) and max(ids) < gpus
    assert len({w["port"] for w in placed}) == workers


def test_allocation_layout() -> None:
    pd = {"prefill": {"workers": 1, "tp": 8}, "decode": {"workers": 2, "tp": 8}}
    assert allocation_layout(pd, 8) == {"prefill": 1, "decode": 2, "router": {"count": 1, "on": "prefill"}, "bench": {"count": 1, "on": "router"}}
    assert allocation_layout({"workers": {"workers": 2, "tp": 4}}, 8, "own", "own") == {"workers": 1, "router": 1, "bench": 1}
    with pytest.raises(ValidationError, match="needs both"):
        allocation_layout({"prefill": {"workers": 1}}, 8)
    with pytest.raises(ValidationError, match="mixes"):
        allocation_layout({"prefill": {}, "decode": {}, "workers": {}}, 8)


def test_worker_endpoints_use_the_leaders_address() -> None:
    workers = place_workers(["a", "b"], {"workers": 1, "tp": 16}, role="prefill", gpus_per_node=8, port=30000, bootstrap_port=8998)
    hostvars = {"a": {"node_address": "10.0.0.1"}, "b": {"node_address": "10.0.0.2"}}
    assert worker_endpoints(workers, hostvars) == [
        {"name": "prefill-0", "role": "prefill", "address": "10.0.0.1", "url": "http://10.0.0.1:30000", "port": 30000, "bootstrap_port": 8998}
    ]


def test_a_user_flag_repeating_a_generated_one_is_an_error() -> None:
    with pytest.raises(TemplateError, match="--disaggregation-bootstrap-port is generated"):
        merge_flags({"disaggregation-bootstrap-port": 8998}, {"--disaggregation-bootstrap-port": 9000})
    with pytest.raises(TemplateError, match="--tp-size is generated"):
        merge_flags({"tp-size": 8}, {"tensor-parallel-size": 4}, aliases={"tensor-parallel-size": "tp-size"})


def test_an_explicit_override_replaces_in_place_once() -> None:
    merged = merge_flags({"port": 1, "tp-size": 8}, {"mem-fraction-static": 0.8}, {"--port": 2})
    assert merged == {"port": 2, "tp-size": 8, "mem-fraction-static": 0.8}
    with pytest.raises(SmlplayError, match="replaces nothing"):
        merge_flags({"port": 1}, {}, {"nope": 2})


def test_render_flags_round_trips_through_a_shell() -> None:
    flags = {
        "model-path": "/models/My Model",
        "trust-remote-code": True,
        "disabled": False,
        "unset": None,
        "worker-urls": ["http://a:1", "http://b:2"],
        "prefill": [["http://a:1", 8998], ["http://b:2", "none"]],
        "json-arg": {"a": 1},
        "odd": "it's $(rm -rf /); x",
    }
    assert shlex.split(render_flags(flags)) == [
        "--model-path", "/models/My Model", "--trust-remote-code",
        "--worker-urls", "http://a:1", "http://b:2",
        "--prefill", "http://a:1", "8998", "--prefill", "http://b:2", "none",
        "--json-arg", '{"a":1}',
        "--odd", "it's $(rm -rf /); x",
    ]


def test_ports_are_numbered_per_node_address() -> None:
    hosts = ["n1", "n2", "n3"]
    workers = place_workers(hosts, {"workers": 6, "tp": 4}, role="prefill", gpus_per_node=8, port=30000, bootstrap_port=8998, addresses=["a", "b", "c"])
    assert [(w["hosts"], w["slot"], w["port"], w["bootstrap_port"]) for w in workers] == [
        (["n1"], 0, 30000, 8998),
        (["n1"], 1, 30001, 8999),
        (["n2"], 0, 30000, 8998),
        (["n2"], 1, 30001, 8999),
        (["n3"], 0, 30000, 8998),
        (["n3"], 1, 30001, 8999),
    ]
    # nodes sharing an address (virtual nodes on one machine) count as one
    shared = place_workers(hosts, {"workers": 3, "tp": 8}, role="decode", gpus_per_node=8, port=31000, addresses=["a", "a", "b"])
    assert [w["port"] for w in shared] == [31000, 31001, 31000]
    with pytest.raises(ValidationError, match="address"):
        place_workers(hosts, {"workers": 1, "tp": 8}, role="decode", gpus_per_node=8, port=1, addresses=["a"])


def test_a_multi_node_worker_takes_a_slot_free_on_all_its_nodes() -> None:
    workers = place_workers(["a", "b", "c", "d"], {"workers": 2, "tp": 16}, role="decode", gpus_per_node=8, port=31000, dist_port=29600, addresses=["A", "B", "B", "C"])
    assert [(w["slot"], w["port"], w["dist_port"]) for w in workers] == [(0, 31000, 29600), (1, 31001, 29601)]
    apart = place_workers(["a", "b", "c", "d"], {"workers": 2, "tp": 16}, role="decode", gpus_per_node=8, port=31000, dist_port=29600, addresses=["A", "B", "C", "D"])
    assert [w["port"] for w in apart] == [31000, 31000]
