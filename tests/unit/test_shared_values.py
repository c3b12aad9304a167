"""Values many hosts share by reference (a group's placement, the play's hosts): one
read-only object instead of a copy per host, which made a 1024-node dry-run quadratic."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest

from engine.errors import SmlplayError
from engine.events import NullSink
from engine.executor.context import RunOptions
from engine.executor.results import has_unknown
from engine.executor.runner import Runner
from engine.frozen import FrozenDict, FrozenList, Known, freeze
from engine.inventory import Inventory
from engine.load.loader import Loader
from engine.template import Unknown

INVENTORY = """
all:
  children:
    prefill:
      hosts:
        n1: {node_address: 10.0.0.1}
        n2: {node_address: 10.0.0.2}
        n3: {node_address: 10.0.0.2}
"""

PLAYBOOK = """
- hosts: prefill
  tasks:
    - name: place
      set_fact:
        workers: >-
          {{ groups.prefill | place_workers({'workers': 6, 'tp': 4}, role='prefill',
               gpus_per_node=8, port=30000, hostvars=hostvars) }}
    - name: mine
      set_fact:
        mine: "{{ workers | ranks_on(inventory_hostname) | map(attribute='name') | list }}"
    - name: joined
      set_fact:
        more: "{{ workers + [{'name': 'extra'}] }}"
        first: "{{ {'rank': 0} | combine(workers[0]) }}"
"""


def _runner(tmp_path: Path, playbook: str = PLAYBOOK) -> Runner:
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    (tmp_path / "playbook.yaml").write_text(playbook)
    loader = Loader([tmp_path / "roles"])
    book = loader.load_playbook(tmp_path / "playbook.yaml")
    return Runner(
        book,
        Inventory.from_file(tmp_path / "inventory.yaml"),
        RunOptions(dry_run=True),
        loader=loader,
        sink=NullSink(),
        run_dir=tmp_path / "runs" / "x",
        run_id="x",
    )


def test_every_host_of_a_group_references_one_read_only_placement(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    runner.run()
    placed = [runner.hosts[h].facts["workers"] for h in ("n1", "n2", "n3")]
    assert placed[0] is placed[1] is placed[2]
    assert isinstance(placed[0], FrozenList) and isinstance(placed[0][0], FrozenDict)
    # the values are the same as before: ports per node address (n2 and n3 share one)
    assert [(w["name"], w["leader"], w["slot"], w["port"]) for w in placed[0]] == [
        ("prefill-0", "n1", 0, 30000), ("prefill-1", "n1", 1, 30001),
        ("prefill-2", "n2", 0, 30000), ("prefill-3", "n2", 1, 30001),
        ("prefill-4", "n3", 2, 30002), ("prefill-5", "n3", 3, 30003),
    ]
    assert runner.hosts["n3"].facts["mine"] == ["prefill-4", "prefill-5"]
    # templates build new values from it as from any list and dict
    assert runner.hosts["n1"].facts["more"][-1] == {"name": "extra"} and len(placed[0]) == 6
    assert runner.hosts["n1"].facts["first"]["name"] == "prefill-0"
    assert json.loads(json.dumps(placed[0]))[4]["hosts"] == ["n3"]


def test_changing_the_shared_placement_in_a_template_is_an_error(tmp_path: Path) -> None:
    playbook = PLAYBOOK + """
    - name: mutate
      debug:
        msg: "{{ workers.append(1) }}"
"""
    runner = _runner(tmp_path, playbook)
    with pytest.raises(SmlplayError, match="read-only"):
        runner.run()


def test_frozen_values_refuse_changes_and_count_as_known() -> None:
    value = freeze([{"a": [1, 2]}, "x"])
    assert value == [{"a": [1, 2]}, "x"] and isinstance(value, Known)
    for change in (lambda: value.append(1), lambda: value[0].update(b=1), lambda: value[0]["a"].pop(),
                   lambda: value.__setitem__(0, 1), lambda: value[0].setdefault("c", 1)):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert not has_unknown(value)
    # copies belong to whoever made them: plain, mutable
    for copied in (copy.copy(value), copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert copied == value and type(copied) is list
        copied.append(1)
    deep = copy.deepcopy(value)
    assert type(deep[0]) is dict and type(deep[0]["a"]) is list
    deep[0]["a"].append(3)
    assert value[0]["a"] == [1, 2]
    # a value holding a placeholder is not frozen (it is not known)
    with_unknown = [{"a": Unknown("registered: r")}]
    assert freeze(with_unknown) is with_unknown and has_unknown(freeze(with_unknown))
