"""Files over SSH: one reused SFTP session per host, atomic writes, reads.

Split from :mod:`.ssh` so the transport module keeps to connections, shells and processes.
The session rides on the host's pooled connection; when that connection is dropped the
transport calls :meth:`SftpFiles.drop` and the next file operation opens a new session.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.errors import TransportError
from engine.transport import _paramiko
from engine.transport._shell import remote_path

if TYPE_CHECKING:
    import paramiko


class SftpFiles:
    """The SFTP half of :class:`~engine.transport.ssh.SshTransport` (thread-safe)."""

    def __init__(self, host: str, transport: Callable[[], paramiko.Transport]) -> None:
        self.host = host
        self._transport = transport
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()

    def _client(self) -> paramiko.SFTPClient:
        """The host's SFTP session (caller holds ``_lock``)."""
        t = self._transport()
        channel = self._sftp.get_channel() if self._sftp is not None else None
        if channel is None or channel.closed:
            _paramiko.load()  # without invoke
            import paramiko

            try:
                self._sftp = paramiko.SFTPClient.from_transport(t)
            except Exception as exc:
                raise TransportError(f"host {self.host}: cannot start SFTP: {exc}") from exc
            if self._sftp is None:
                raise TransportError(f"host {self.host}: cannot start SFTP")
        return self._sftp

    def drop(self) -> None:
        """Forget the session of a dead connection. Not under ``_lock``: ``write`` holds it
        while it (re)connects, and reconnecting drops the old connection through here."""
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            try:
                sftp.close()
            except Exception:
                pass

    def write(
        self, data: bytes, path: str, tmp: str, *, mode: int | None = None, shown_as: str = ""
    ) -> None:
        """Write ``data`` to ``tmp``, then rename it to ``path`` (the parent exists).
        ``shown_as``: the destination as the user wrote it, for the error message."""
        with self._lock:
            sftp = self._client()
            try:
                sftp.putfo(io.BytesIO(data), tmp, file_size=len(data))
                if mode is not None:
                    sftp.chmod(tmp, mode)
                sftp.posix_rename(tmp, path)
            except OSError as exc:
                try:
                    sftp.remove(tmp)
                except OSError:
                    pass
                raise TransportError(
                    f"host {self.host}: cannot write {shown_as or path}: {exc}"
                ) from exc

    def read(self, path: str) -> bytes:
        """The file's bytes. A missing file raises ``FileNotFoundError``, as locally."""
        with self._lock:
            sftp = self._client()
            with sftp.open(remote_path(path), "rb") as f:
                f.prefetch()
                return f.read()
