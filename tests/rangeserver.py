"""A tiny HTTP file server with byte ranges, for remote-scene tests (127.0.0.1 only, in a thread).

Python's ``http.server`` ignores ``Range``; GDAL's ``/vsicurl/`` needs it. This handler serves
the files of one folder: ``HEAD`` → 200 with ``Content-Length`` (and ``Last-Modified``/``ETag``),
``GET`` with ``Range: bytes=a-b`` → 206 Partial Content with ``Content-Range``, ``GET`` without
→ 200 whole file, anything else → 404. Every request is logged in ``server.requests``; set
``server.failing = True`` to answer everything with 503 (a server going down mid-run).
"""

from __future__ import annotations

import email.utils
import re
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    server: RangeServer

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def _file(self) -> Path | None:
        name = self.path.split("?", 1)[0].lstrip("/")
        path = (self.server.root / name).resolve()
        if self.server.root not in path.parents or not path.is_file():
            return None
        return path

    def _headers(self, path: Path, status: int, length: int, extra: dict[str, str] | None = None) -> None:
        st = path.stat()
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        self.send_header("ETag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def _not_found(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _unavailable(self) -> bool:
        if self.server.failing:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        return self.server.failing

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self.server.requests.append(("HEAD", self.path, None))
        if self._unavailable():
            return None
        path = self._file()
        if path is None:
            return self._not_found()
        self._headers(path, 200, path.stat().st_size)

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        self.server.requests.append(("GET", self.path, rng))
        if self._unavailable():
            return None
        path = self._file()
        if path is None:
            return self._not_found()
        data = path.read_bytes()
        m = _RANGE.match(rng or "")
        if m is None:
            self._headers(path, 200, len(data))
            self.wfile.write(data)
            return
        start, end = m.groups()
        if start == "":  # suffix range: the last N bytes
            start, end = max(0, len(data) - int(end)), len(data) - 1
        else:
            start, end = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data[start : end + 1]
        self._headers(path, 206, len(body), {"Content-Range": f"bytes {start}-{end}/{len(data)}"})
        self.wfile.write(body)


class RangeServer(ThreadingHTTPServer):
    """Serves ``root`` on 127.0.0.1:``port`` (see the module docstring)."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root).resolve()
        self.requests: list[tuple[str, str, str | None]] = []
        self.failing = False

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serve(root: Path):
    """Run a :class:`RangeServer` on ``root`` in a thread for the ``with`` block."""
    server = RangeServer(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def silent_server():
    """A port that accepts connections but never answers (for timeouts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
