"""SSH host data: the servers to log in to (target and jump hosts) and a host's settings,
from its ``ssh_*`` inventory variables and ``~/.ssh/config`` (part of the SSH transport,
:mod:`engine.transport.ssh`)."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import ValidationError
from engine.transport import _paramiko
from engine.units import parse_duration

if TYPE_CHECKING:
    import paramiko

DEFAULT_SSH_CONFIG = "~/.ssh/config"
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"



@dataclass(frozen=True)
class SshEndpoint:
    """One SSH server to log in to: the target itself or a jump host on the way."""

    host: str
    port: int = 22
    user: str = ""
    keys: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH (and paramiko) name this server in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.address}"


@dataclass(frozen=True)
class SshHostSpec:
    """How to reach one inventory host over SSH, from its ``ssh_*`` variables.

    Values not set in the inventory come from ``~/.ssh/config`` (HostName, Port, User,
    IdentityFile, ProxyJump) and then from ssh's own defaults, so hosts users already reach
    with ``ssh NAME`` need no variables at all.
    """

    name: str  # inventory hostname (what errors and records call it)
    host: str
    port: int = 22
    user: str = ""
    keys: tuple[str, ...] = ()  # private key files; empty: ~/.ssh/id_* and the agent
    jump: tuple[SshEndpoint, ...] = ()  # ProxyJump chain, outermost first
    known_hosts: tuple[str, ...] = ()  # extra known_hosts files, checked first
    strict_host_key_checking: bool = True
    connect_timeout: float = 10.0
    retries: int = 2
    max_shells: int = 8

    @property
    def endpoint(self) -> SshEndpoint:
        return SshEndpoint(self.host, self.port, self.user, self.keys)

    @classmethod
    def from_vars(
        cls,
        inventory_hostname: str,
        hostvars: Mapping[str, Any],
        *,
        ssh_config: str | None = DEFAULT_SSH_CONFIG,
    ) -> SshHostSpec:
        """Build from host variables:

        - ``ssh_host`` (default: the inventory name, looked up in ``~/.ssh/config``)
        - ``ssh_port`` (22), ``ssh_user`` (the current user), ``ssh_key`` (a private key file)
        - ``ssh_jump``: jump host(s) ``user@host:port[,user@host:port]``, like ProxyJump,
          outermost first; each is looked up in ``~/.ssh/config``; without a user there, the
          local user (as ssh does); without a key there, ``ssh_key`` is tried too
        - ``ssh_known_hosts``: an extra known_hosts file (or a list of them)
        - ``ssh_strict_host_key_checking`` (true): false accepts unknown host keys with a
          warning (changed keys are still refused), like ``StrictHostKeyChecking=accept-new``
        - ``ssh_connect_timeout`` (10 s), ``ssh_retries`` (2), ``ssh_max_shells`` (8)
        """
        name = inventory_hostname
        config = _load_ssh_config(ssh_config)
        alias = str(hostvars.get("ssh_host") or name)
        found = _config_lookup(config, alias)
        host = str(found.get("hostname") or alias)
        if hostvars.get("ssh_port") is not None:
            port = _int_var(name, "ssh_port", hostvars["ssh_port"], minimum=1)
        else:
            port = _int_var(name, "Port in ssh config", found.get("port", 22), minimum=1)
        user = str(hostvars.get("ssh_user") or found.get("user") or getpass.getuser())
        if hostvars.get("ssh_key"):
            keys: tuple[str, ...] = (os.path.expanduser(str(hostvars["ssh_key"])),)
        else:
            keys = tuple(os.path.expanduser(k) for k in found.get("identityfile", []))
        jump_text = hostvars.get("ssh_jump") or found.get("proxyjump") or ""
        jump: tuple[SshEndpoint, ...] = ()
        if str(jump_text).strip().lower() not in ("", "none"):
            jump = tuple(
                _parse_endpoint(name, part, config=config, fallback_keys=keys)
                for part in str(jump_text).split(",")
                if part.strip()
            )
        extra = hostvars.get("ssh_known_hosts") or ()
        if isinstance(extra, str):
            extra = (extra,)
        return cls(
            name=name,
            host=host,
            port=port,
            user=user,
            keys=keys,
            jump=jump,
            known_hosts=tuple(os.path.expanduser(str(p)) for p in extra),
            strict_host_key_checking=_bool_var(
                name,
                "ssh_strict_host_key_checking",
                hostvars.get("ssh_strict_host_key_checking", True),
            ),
            connect_timeout=_timeout_var(
                name, "ssh_connect_timeout", hostvars.get("ssh_connect_timeout", 10)
            ),
            retries=_int_var(name, "ssh_retries", hostvars.get("ssh_retries", 2), minimum=0),
            max_shells=_int_var(
                name, "ssh_max_shells", hostvars.get("ssh_max_shells", 8), minimum=1
            ),
        )


def _load_ssh_config(path: str | None) -> paramiko.SSHConfig | None:
    if not path:
        return None
    full = os.path.expanduser(path)
    if not os.path.isfile(full):
        return None
    _paramiko.load()  # without invoke
    import paramiko

    return paramiko.SSHConfig.from_path(full)


def _config_lookup(config: paramiko.SSHConfig | None, alias: str) -> dict[str, Any]:
    return dict(config.lookup(alias)) if config is not None else {}


def _parse_endpoint(
    name: str, text: str, *, config: paramiko.SSHConfig | None, fallback_keys: tuple[str, ...]
) -> SshEndpoint:
    """``[ssh://][user@]host[:port]`` (``[v6addr]:port`` too), resolved through ssh config."""
    rest = text.strip().removeprefix("ssh://")
    user = ""
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
    port: Any = None
    if rest.startswith("["):
        alias, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = tail[1:]
    elif rest.count(":") == 1:
        alias, port = rest.split(":")
    else:
        alias = rest
    if not alias:
        raise ValidationError(f"host {name}: ssh_jump entry {text!r} has no host name")
    found = _config_lookup(config, alias)
    keys = tuple(os.path.expanduser(k) for k in found.get("identityfile", [])) or fallback_keys
    return SshEndpoint(
        host=str(found.get("hostname") or alias),
        port=_int_var(name, "ssh_jump port", port if port else found.get("port", 22), minimum=1),
        user=user or str(found.get("user") or getpass.getuser()),
        keys=keys,
    )


def _int_var(name: str, var: str, value: Any, *, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"host {name}: {var} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or number < minimum:
        raise ValidationError(f"host {name}: {var} must be an integer >= {minimum}, got {value!r}")
    return number


def _timeout_var(name: str, var: str, value: Any) -> float:
    """Seconds > 0, as a number or a duration (``30s``, ``2m``): the loader accepts both."""
    try:
        seconds = parse_duration(value, what=f"host {name}: {var}")
    except ValidationError:
        raise ValidationError(
            f"host {name}: {var} must be a duration longer than 0 (30, 30s, 2m), got {value!r}"
        ) from None
    if seconds <= 0:
        raise ValidationError(f"host {name}: {var} must be longer than 0, got {value!r}")
    return seconds


def _bool_var(name: str, var: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ValidationError(f"host {name}: {var} must be true or false, got {value!r}")
