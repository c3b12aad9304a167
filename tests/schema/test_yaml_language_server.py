"""The generated schema in the real yaml-language-server (the editors' YAML checker), over
LSP on stdio: a shipped playbook with a ``# yaml-language-server: $schema=`` modeline gets no
diagnostics, a misspelt keyword gets one on its line.

Needs ``yaml-language-server`` from npm: ``.ci/run`` installs it into ``.ci/node/`` (also
found on PATH or at ``SMLPLAY_YLS``); skipped without it, except under CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / ".ci" / "node" / "node_modules" / ".bin" / "yaml-language-server"
BINARY = os.environ.get("SMLPLAY_YLS") or (str(LOCAL) if LOCAL.exists() else shutil.which("yaml-language-server"))
pytestmark = pytest.mark.skipif(
    not BINARY and os.environ.get("CI") != "true",
    reason="yaml-language-server is not installed (npm install --prefix .ci/node yaml-language-server@1.25.0)",
)


class Lsp:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 0

    def send(self, method: str, params: Any, *, request: bool = False) -> int | None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            msg["id"] = self.next_id
        body = json.dumps(msg).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return msg.get("id")

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError("the language server exited")
            if line in (b"\r\n", b"\n"):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return dict(json.loads(self.proc.stdout.read(length)))

    def diagnostics(self, uri: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.read()
            if msg.get("method") == "textDocument/publishDiagnostics" and msg["params"]["uri"] == uri:
                return list(msg["params"]["diagnostics"])
            if "id" in msg and "method" in msg:  # a request to us (configuration...): answer empty
                body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": [{"validate": True}] * len(msg["params"].get("items", [None]))}).encode()
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                self.proc.stdin.flush()
        raise TimeoutError(f"no diagnostics for {uri}")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_yaml_language_server_checks_with_the_generated_schema(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    subprocess.run([sys.executable, "-m", "engine", "schema", "--dir", str(schemas)], check=True, capture_output=True, cwd=REPO, timeout=60)
    schema_uri = (schemas / "smlplay-playbook.schema.json").as_uri()
    good = f"# yaml-language-server: $schema={schema_uri}\n" + (REPO / "playbooks" / "llama70b.yaml").read_text(encoding="utf-8")
    bad = f"# yaml-language-server: $schema={schema_uri}\n- hosts: all\n  tasks:\n    - shell: echo hi\n      notfy: done\n"
    assert BINARY, "yaml-language-server is missing under CI: .ci/run installs it with npm"
    lsp = Lsp([str(BINARY), "--stdio"])
    try:
        lsp.send("initialize", {"processId": os.getpid(), "rootUri": tmp_path.as_uri(), "capabilities": {}}, request=True)
        while "id" not in lsp.read():
            pass
        lsp.send("initialized", {})
        lsp.send("workspace/didChangeConfiguration", {"settings": {"yaml": {"validate": True, "schemaStore": {"enable": False}}}})
        found = {}
        for name, text in (("good.yaml", good), ("bad.yaml", bad)):
            uri = (tmp_path / name).as_uri()
            lsp.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}})
            found[name] = lsp.diagnostics(uri)
    finally:
        lsp.close()
    assert found["good.yaml"] == [], found["good.yaml"]
    assert found["bad.yaml"], "a misspelt task keyword must be flagged"
    [diag] = [d for d in found["bad.yaml"] if d["range"]["start"]["line"] == 4]  # the `notfy:` line
    assert "notfy" in diag["message"] and "smlplay playbook" in diag.get("source", ""), diag
