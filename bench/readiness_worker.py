#!/usr/bin/env python3
"""A stand-in worker for ``bench/readiness.py``: answers ``GET /health`` with 503 until
``--ready-after`` seconds after it started, then 200, and appends every poll and the moment
it turned healthy to ``--record`` (JSON lines, wall-clock time). Standard library only, so
it starts in milliseconds and the known moment is exact."""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-after", type=float, required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--lifetime", type=float, default=120, help="exit after this many seconds (nothing left behind)")
    args = parser.parse_args()
    started = time.time()
    ready_at = started + args.ready_after
    lock = threading.Lock()

    def record(event: str, **data: object) -> None:
        with lock, open(args.record, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, "t": time.time(), **data}) + "\n")

    record("start", ready_at=ready_at)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            healthy = time.time() >= ready_at
            record("poll", path=self.path, healthy=healthy)
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Timer(args.lifetime, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
