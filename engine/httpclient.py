"""A tiny HTTP/1.1 client that runs over a transport's TCP connection.

Health probes and the ``http`` action must reach ports that only the host (or the login
node in front of it) can see, so requests go through ``transport.connect_tcp``: a plain
socket locally, a ``direct-tcpip`` channel over SSH. ``http.client`` does the protocol work;
we only hand it the connection.
"""

from __future__ import annotations

import http.client
import json as jsonlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engine.transport.base import Transport


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.body) if self.body else None


def request(
    transport: Transport,
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> HttpResponse:
    """One request; raises ``OSError`` on connection failure (the caller decides retries)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", ""):
        raise ValueError(f"only http:// URLs are supported here, got {url!r}")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    sock = transport.connect_tcp(host, port, timeout)
    sock.settimeout(timeout)
    # http.client closes conn.sock inside getresponse() when the server says
    # "Connection: close"; for an SSH channel that drops body bytes not yet buffered. The
    # response keeps reading through its own file object; we close the channel ourselves.
    conn.sock = _KeepOpen(sock)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        return HttpResponse(resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()
        sock.close()


class _KeepOpen:
    """A socket-like wrapper whose ``close`` is a no-op (see :func:`request`)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
