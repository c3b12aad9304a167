"""The benchmark client of tests/faults/playbooks/stack.yaml: POST /generate through the
gateway for SECONDS seconds, one request at a time; exit 1 if any request failed.

    client.py ROUTER_URL SECONDS MARKER
"""

import json
import sys
import time
import urllib.request


def main() -> int:
    url, seconds, marker = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    body = json.dumps({"text": f"fault matrix {marker}", "sampling_params": {"max_new_tokens": 8}}).encode()
    deadline = time.monotonic() + seconds
    ok = failed = 0
    print(f"benchmark {marker} against {url} for {seconds:g}s", flush=True)
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{url}/generate", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                json.load(response)
            ok += 1
        except (OSError, ValueError) as exc:
            failed += 1
            print(f"request failed: {exc}", flush=True)
            time.sleep(0.2)
    print(f"completed={ok} failed={failed}", flush=True)
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    sys.exit(main())
