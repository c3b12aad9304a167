"""Open a page in real headless Chromium (Debian's `chromium`) and read back what a checker
script found: each <img>'s naturalWidth/Height once loaded, and the rows of a table."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Appended to a copy of the page (the report itself has no script): after `load`, writes
# what it measured into the DOM, which --dump-dom prints. A raw string: a plain one turned
# the JS '\n' into a line break inside a string literal, a syntax error, so the checker
# never ran and its marker never reached the dumped DOM.
CHECKER = r"""
<script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => ({alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}));
  const rows = [...document.querySelectorAll('table#points tbody tr')].map(r => r.dataset.run);
  const out = document.createElement('pre');
  out.id = 'smlplay-check';
  // the marker is assembled so that the script's own text never matches it
  out.textContent = ['SMLPLAY', 'CHECK'].join('-') + JSON.stringify({imgs, rows, external: [...document.querySelectorAll('[src^="http"],link[href]')].length}) + '\n';
  document.body.appendChild(out);
});
</script>
"""


def have_chromium() -> bool:
    return Path(CHROMIUM).exists()


def inspect_page(page: Path, *, timeout: float = 90) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="smlplay-chromium-") as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECKER + "</body>"), encoding="utf-8")
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp}/profile", "--virtual-time-budget=5000", "--dump-dom", copy.as_uri()],
            capture_output=True, text=True, timeout=timeout,
        )
    found = re.search(r"SMLPLAY-CHECK(.*)", proc.stdout)
    assert found, f"chromium printed no check (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    return dict(json.loads(html.unescape(found.group(1))))
