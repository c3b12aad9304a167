"""A decode worker started after the gateway joins it without a router restart: the P/D
stack of the embedded default (simulated workers, the real smg), then a later play starts
one more decode worker (serving-worker, ``worker_name: decode-late``), which registers itself
through smg's worker API; requests through the gateway then reach it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.stack.stack import REPO, env_for, free_ports

PLAYBOOK = """\
- {name: allocate the nodes, hosts: scheduler, vars_files: [VARS], roles: [allocate]}
- {name: prefill workers, hosts: prefill, vars_files: [VARS], roles: [sglang-prefill]}
- {name: decode workers, hosts: decode, vars_files: [VARS], roles: [sglang-decode]}
- {name: front door, hosts: router, vars_files: [VARS], roles: [router]}
- name: a decode worker started later
  hosts: decode
  vars_files: [VARS]
  roles:
    - {role: serving-worker, worker_role: decode, worker_group: decode, worker_name: decode-late, worker_port_base: @LATE@}
- name: the gateway sends requests to it
  hosts: router
  tasks:
    - name: smg counts two decode workers
      http: {url: "{{ router_url }}/workers"}
      register: listed
      until: listed.json.stats.decode_count == 2
      retries: 30
      delay: 1
    - name: requests through the gateway
      http:
        url: "{{ router_url }}/generate"
        method: POST
        body: {text: "late {{ item }}", sampling_params: {max_new_tokens: 3}}
      loop: "{{ range(8) | list }}"
    - name: the late worker served some
      http: {url: "http://127.0.0.1:@LATE@/get_server_info"}
      register: late
    - name: report
      debug: {msg: "kv transfers of the late worker: {{ late.json.sim_counters.kv_transfers }}"}
"""


def test_a_decode_worker_started_later_joins_the_gateway(tmp_path: Path) -> None:
    router, metrics, prefill, decode, bootstrap, late = free_ports(6)
    playbook = tmp_path / "late.yaml"
    playbook.write_text(PLAYBOOK.replace("VARS", str(REPO / "playbooks" / "vars" / "llama70b.yaml")).replace("@LATE@", str(late)))
    overrides = {
        "router_port": router, "router_metrics_port": metrics, "prefill_port_base": prefill,
        "decode_port_base": decode, "prefill_bootstrap_port_base": bootstrap, "opentela": False,
        "router_policy": "round_robin",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", "-v", str(playbook), "-i", str(REPO / "inventory" / "local.yaml"), "-e", json.dumps(overrides)],
        cwd=tmp_path, env=env_for(tmp_path), capture_output=True, text=True, timeout=240,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    late_play = out.split("a decode worker started later")[1].split("PLAY [")[0]
    assert "register the workers with the gateway" in late_play, late_play
    served = int(out.split("kv transfers of the late worker: ")[1].split()[0].strip("'\""))
    assert served >= 3, out[-3000:]  # round robin over two decode workers: about half of 8
