"""Headless Chromium for the page tests: the network is blocked, the page's requests are recorded.

The system Chromium (Debian's ``chromium``, installed by ``.ci/run``) is driven through its
command line: ``--dump-dom`` after the page's scripts ran, ``--screenshot`` and
``--print-to-pdf``. Every request that would leave the machine fails (an unreachable proxy and
a resolver that resolves nothing); a probe script appended to a copy of the page writes the
URLs of all resources the page fetched (Resource Timing) into the DOM for the test to read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

NO_NETWORK = [
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PROBE = (
    "<script>window.addEventListener('load',()=>setTimeout(()=>{const d=document.createElement('pre');"
    "d.id='dm-probe';d.textContent=JSON.stringify(performance.getEntriesByType('resource').map(e=>e.name));"
    "document.body.appendChild(d);},300));</script>"
)


def chromium() -> str:
    """The Chromium executable, or skip the test saying none was found."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    pytest.skip("no Chromium found (apt-get install chromium; or set CHROMIUM=/path/to/chrome)")


def _run(page: Path, *args: str, size: str = "1280,900") -> str:
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={size}",
        f"--user-data-dir={page.parent / '.chromium-profile'}",
        *NO_NETWORK,
        "--virtual-time-budget=5000",
        *args,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def probed_copy(page: Path) -> Path:
    """A copy of the page with the resource probe before ``</body>``."""
    html = page.read_text(encoding="utf-8")
    copy = page.with_name("probed-" + page.name)
    copy.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    return copy


def dump_dom(page: Path) -> tuple[str, list[str]]:
    """``(DOM after the scripts ran, URLs of every resource the page fetched)``."""
    dom = _run(probed_copy(page), "--dump-dom")
    found = re.search(r"<pre id=\"dm-probe\">(.*?)</pre>", dom, re.S)
    assert found, "the probe did not run: the page's scripts failed?"
    import html

    return dom, json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, png: Path, size: str = "1280,900") -> Path:
    """A PNG of the rendered page."""
    _run(page, f"--screenshot={png}", size=size)
    assert png.is_file()
    return png


def print_pdf(page: Path, pdf: Path) -> Path:
    """The page printed to PDF."""
    _run(page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert pdf.is_file()
    return pdf


def external_references(text: str) -> list[str]:
    """Attributes and CSS ``url()`` in a page that point outside it (src/href/url to http(s) or //)."""
    pattern = r"(?:src|href)\s*=\s*[\"']?\s*((?:https?:)?//[^\s\"'>]+)|url\(\s*[\"']?((?:https?:)?//[^)\"']+)"
    return [a or b for a, b in re.findall(pattern, text, re.I)]
