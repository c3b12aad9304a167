"""Fixtures for the ssh transport: a real OpenSSH server on loopback (tests/cluster/sshd.sh).

The server is started once per session (about 10 ms when it already runs, a few seconds when
openssh-server must be installed first) and stopped again only if this session started it.
Where it cannot run (not root and no sshd installed, no apt) the tests are skipped with the
reason; under CI (``CI=true``) that is a failure instead, so a broken setup is not mistaken
for a green run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SSHD_SCRIPT = Path(__file__).resolve().parents[1] / "cluster" / "sshd.sh"


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    user: str
    key: str
    known_hosts: str
    dir: str

    def hostvars(self, **extra: Any) -> dict[str, Any]:
        """Inventory variables that reach this server with strict host key checking."""
        return {
            "ssh_host": self.host,
            "ssh_port": self.port,
            "ssh_user": self.user,
            "ssh_key": self.key,
            "ssh_known_hosts": self.known_hosts,
            **extra,
        }


def _cannot(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"sshd for the ssh transport tests is unavailable under CI: {reason}")
    pytest.skip(f"needs the loopback sshd: {reason}")


def _running(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    if not Path("/usr/sbin/sshd").exists():
        if os.geteuid() != 0:
            _cannot("openssh-server is not installed and installing it needs root")
        if shutil.which("apt-get") is None:
            _cannot("openssh-server is not installed and there is no apt-get")
    state = Path(os.environ.get("SMLPLAY_SSH_DIR", "/tmp/smlplay-ssh"))
    was_running = _running(state / "sshd.pid")
    up = subprocess.run(
        [str(SSHD_SCRIPT), "up"], capture_output=True, text=True, timeout=600, check=False
    )
    if up.returncode != 0:
        _cannot(f"`sshd.sh up` failed (rc={up.returncode}): {up.stderr.strip()[-2000:]}")
    env_out = subprocess.run(
        [str(SSHD_SCRIPT), "env"], capture_output=True, text=True, check=True
    ).stdout
    values: dict[str, str] = {}
    for line in env_out.splitlines():
        name, _, value = line.partition("=")
        values[name] = shlex.split(value)[0] if value else ""
    yield Sshd(
        host=values["SMLPLAY_SSH_HOST"],
        port=int(values["SMLPLAY_SSH_PORT"]),
        user=values["SMLPLAY_SSH_USER"],
        key=values["SMLPLAY_SSH_KEY"],
        known_hosts=values["SMLPLAY_SSH_KNOWN_HOSTS"],
        dir=values["SMLPLAY_SSH_DIR"],
    )
    if not was_running:
        subprocess.run([str(SSHD_SCRIPT), "down"], check=False, timeout=60)


@pytest.fixture
def ssh(sshd: Sshd) -> Iterator[Any]:
    """A connected SshTransport to the loopback sshd (host name ``box``)."""
    from engine.transport.ssh import SshHostSpec, SshTransport

    spec = SshHostSpec.from_vars("box", sshd.hostvars(), ssh_config=None)
    transport = SshTransport(spec).connect()
    try:
        yield transport
    finally:
        transport.close()
