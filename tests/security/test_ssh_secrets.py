"""SSH: host keys are checked by default, and keys and passwords never reach any output.

Real CLI runs against the loopback sshd (tests/cluster/sshd.sh).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.secrets import MASK
from tests.e2e.conftest import Workdir
from tests.security.test_secrets_masking import _files
from tests.transport.conftest import Sshd, sshd  # noqa: F401  (fixture)

pytestmark = pytest.mark.cluster

PASSWORD = "Ssh-Pa55w0rd-7Hq"
PASSPHRASE = "key-Passphr4se-2Lm"

PLAYBOOK = """
- name: over ssh
  hosts: box
  tasks:
    - name: a command that uses the password
      shell: "echo connecting with {{ ssh_password }} > /dev/null; echo done"
    - name: a failure quoting it
      command: "false {{ ssh_password }}"
      ignore_errors: true
    - name: a process over ssh
      process: {name: "sleeper", cmd: "exec sleep 30 # {{ ssh_key_passphrase }}"}
"""


def _inventory(work: Workdir, ssh: Sshd, **extra: object) -> None:
    box = {"connection": "ssh", **ssh.hostvars(), "ssh_password": PASSWORD, "ssh_key_passphrase": PASSPHRASE, **extra}
    work.write("inventory.yaml", json.dumps({"all": {"hosts": {"box": box}}}))


def test_ssh_password_and_key_never_logged(work: Workdir, sshd: Sshd) -> None:  # noqa: F811
    _inventory(work, sshd)
    work.write("pb.yaml", PLAYBOOK)
    key_body = [line for line in Path(sshd.key).read_text().splitlines() if "PRIVATE KEY" not in line]
    outputs = {}
    for mode in (("-vv",), ("--output", "json")):
        proc = work.smlplay("run", "pb.yaml", "-i", "inventory.yaml", *mode)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs[f"stdout {mode}"], outputs[f"stderr {mode}"] = proc.stdout, proc.stderr
    files = _files(work.path / "runs")
    assert any(f"false {MASK}" in text for text in files.values())  # the command ran, and was logged masked
    everything = {**outputs, **files}
    leaks = [f"{what} in {where}" for where, text in everything.items()
             for what, value in (("password", PASSWORD), ("passphrase", PASSPHRASE), *(("key", line) for line in key_body))
             if value in text]
    assert not leaks, leaks
    state = json.loads((sorted((work.path / "runs").iterdir())[-1] / "state.json").read_text())
    assert state["hosts"]["box"]["ssh_password"] == MASK  # the record keeps how to reach the host, masked


def test_unknown_host_key_is_refused_by_default(work: Workdir, sshd: Sshd, tmp_path: Path) -> None:  # noqa: F811
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    _inventory(work, sshd, ssh_known_hosts=str(empty))
    work.write("pb.yaml", PLAYBOOK)
    work.env["HOME"] = str(tmp_path)  # no ~/.ssh/known_hosts to fall back on
    proc = work.smlplay("run", "pb.yaml", "-i", "inventory.yaml")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "UNREACHABLE" in out and "host key is unknown" in out, out
    assert PASSWORD not in out
