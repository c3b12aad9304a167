"""Secrets never leave the engine in clear: console (every mode), dry-run (every format),
logs, events and the run record show ``********`` instead.

Each secret is planted the way users write them (an ``-e`` token, an inventory password, a
role argument marked ``secret: true``, the vars of a ``no_log`` task), used the way roles
use them (in a command line, an environment, a process's argv, an error message), and then
every byte the run produced is searched for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.secrets import MASK
from tests.e2e.conftest import Workdir

pytestmark = pytest.mark.e2e

HF_TOKEN = "hf_Plant3dTok3nXYZ"  # -e hf_token=...
INV_PASSWORD = "inv-Passw0rd-Q7x"  # inventory host var db_password
ROLE_KEY = "role-K3y-secret-9Zp"  # role default of an argument with secret: true
NO_LOG_VALUE = "nolog-Bl0b-3Kd8"  # vars of a no_log task
QUOTED = "it's a s3cr3t; $(x)"  # a secret that needs shell quoting: service_secret
SECRETS = (HF_TOKEN, INV_PASSWORD, ROLE_KEY, NO_LOG_VALUE, QUOTED)

INVENTORY = f"""
all:
  hosts:
    localhost:
      connection: local
      db_password: "{INV_PASSWORD}"
"""

ROLE_META = """
argument_specs:
  main:
    options:
      model_key: {type: str, secret: true, description: "API key of the model server"}
"""
ROLE_DEFAULTS = f'model_key: "{ROLE_KEY}"\n'
ROLE_TASKS = """
- name: start the keyed server
  process:
    name: keyed
    cmd: "exec python3 -c 'import time; time.sleep(30)' --api-key {{ model_key }}"
    env: {MODEL_KEY: "{{ model_key }}"}
- name: echo the key's length
  shell: "echo key has {{ model_key | length }} chars; echo {{ model_key }} >&2"
"""

PLAYBOOK = """
- name: secrets
  hosts: localhost
  vars:
    service_secret: "it's a s3cr3t; $(x)"
    login_cmd: "login --token {{ hf_token }}"
  roles:
    - keyed
  tasks:
    - name: a command line that holds the token
      shell: "echo {{ login_cmd }} && echo {{ service_secret | quote }}"
    - name: an environment that holds it
      command: env
      environment: {HF_TOKEN: "{{ hf_token }}", DB_PASSWORD: "{{ db_password }}"}
    - name: debug prints it
      debug: {msg: "password is {{ db_password }}, token {{ hf_token }}"}
    - name: hidden work
      no_log: true
      vars: {blob: "nolog-Bl0b-3Kd8"}
      set_fact: {derived: "{{ blob }}"}
    - name: hidden command
      no_log: true
      shell: "echo {{ derived }} > /dev/null"
    - name: the fact of a no_log task, used later
      shell: echo using {{ derived }}
    - name: a failure whose message quotes it
      command: "false {{ hf_token }}"
      ignore_errors: true
    - name: an assertion quoting it
      assert:
        that: "'{{ hf_token }}' != 'x'"
        success_msg: "token {{ hf_token }} is set"
"""


def _project(work: Workdir) -> None:
    work.write("inventory.yaml", INVENTORY)
    work.write("pb.yaml", PLAYBOOK)
    work.write("roles/keyed/meta/main.yml", ROLE_META)
    work.write("roles/keyed/defaults/main.yml", ROLE_DEFAULTS)
    work.write("roles/keyed/tasks/main.yml", ROLE_TASKS)


def _leaks(texts: dict[str, str]) -> list[str]:
    """Where each secret (or its JSON-escaped form) appears."""
    found = []
    for where, text in texts.items():
        for secret in SECRETS:
            for form in {secret, json.dumps(secret)[1:-1]}:
                if form in text:
                    found.append(f"{secret!r} in {where}")
    return found


def _files(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = path.read_bytes().decode("utf-8", "replace")
    return out


def test_a_real_run_writes_no_secret_anywhere(work: Workdir) -> None:
    _project(work)
    args = ("run", "pb.yaml", "-i", "inventory.yaml", "-e", f"hf_token={HF_TOKEN}")
    consoles = {}
    for mode in ((), ("-v",), ("-vv",), ("--output", "json")):  # () is the default (compact) view
        proc = work.smlplay(*args, *mode)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        consoles[f"stdout {' '.join(mode)}"] = proc.stdout
        consoles[f"stderr {' '.join(mode)}"] = proc.stderr
    # the secrets were really used: masked lines are there, and the processes got the values
    text = consoles["stdout -vv"]  # -vv: the Ansible-style log with stdout/stderr
    assert f"login --token {MASK}" in text, text
    assert f"password is {MASK}, token {MASK}" in text, text
    assert "key has 19 chars" in text, text  # derived values that are not the secret stay
    runs = sorted((work.path / "runs").iterdir())
    assert len(runs) == 4
    files = _files(work.path / "runs")
    assert any(n.endswith("state.json") for n in files) and any(n.endswith(".log") for n in files)
    assert not _leaks({**consoles, **files})
    # the record says what ran, with the mask: state.json's argv and processes
    state = json.loads((runs[-1] / "state.json").read_text())
    assert f"hf_token={MASK}" in state["argv"], state["argv"]


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_dry_run_in_every_format_masks_secrets(work: Workdir, fmt: str) -> None:
    _project(work)
    proc = work.smlplay("run", "pb.yaml", "-i", "inventory.yaml", "-e", f"hf_token={HF_TOKEN}", "--dry-run", "--format", fmt, "--out", "plan", "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert MASK in proc.stdout
    assert "(hidden by no_log)" in proc.stdout or fmt == "json"
    files = _files(work.path / "plan")
    assert files
    assert not _leaks({"stdout": proc.stdout, "stderr": proc.stderr, **files})


def test_an_input_error_quoting_a_secret_is_masked(work: Workdir) -> None:
    work.write("pb.yaml", """
- hosts: localhost
  tasks:
    - assert:
        that: "hf_token == 'other'"
        fail_msg: "wrong token {{ hf_token }}"
""")
    proc = work.smlplay("run", "pb.yaml", "-e", f"hf_token={HF_TOKEN}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"wrong token {MASK}" in proc.stderr, proc.stderr
    assert not _leaks({"stdout": proc.stdout, "stderr": proc.stderr})
