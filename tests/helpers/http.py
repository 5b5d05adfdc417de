"""A file server on 127.0.0.1 for download tests: ``Range: bytes=N-`` and a cut connection."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    """GET from ``server.files`` (path with query -> bytes); honours ``Range: bytes=N-``
    unless ``server.ignore_range``; a path in ``server.cut_once`` is sent half-way, then the
    connection is dropped (once)."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, status = 0, 200
        rng = None if srv.ignore_range else self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start, status = int(rng[6:-1]), 206
            if start >= len(body):
                self.send_error(416)
                return
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if self.path in srv.cut_once:
            srv.cut_once.discard(self.path)
            self.wfile.write(body[start: start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@contextmanager
def running(httpd: ThreadingHTTPServer):
    """``httpd`` (bound to a loopback port) served from a thread, with ``.url``; shut down after."""
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def file_server():
    """A running server with ``.files``, ``.log``, ``.cut_once``, ``.ignore_range`` and ``.url``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.log, httpd.cut_once, httpd.ignore_range = {}, [], set(), False
    with running(httpd):
        yield httpd
