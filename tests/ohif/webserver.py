"""The web server the browser opens OHIF from: the viewer's prebuilt ``dist/`` served as a
single-page app with an app-config of the test's own, and optionally a reverse proxy that
forwards the DICOMweb roots to our server, as a same-origin deployment behind nginx would.

Why a server of the test's own rather than any static server: OHIF routes in the browser, so
every page the browser navigates to (``/viewer?StudyInstanceUIDs=...``) is index.html; the shipped
``app-config.js`` points at a public demo server and is replaced; and the proxy must stream
frames and set ``X-Forwarded-Host``/``-Proto`` so the BulkDataURIs our server writes into
the metadata lead back through the proxy, not around it.
"""

from __future__ import annotations

import mimetypes
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import httpx

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",  # WebAssembly.instantiateStreaming insists on it
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}
# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
# What httpx sends unless told otherwise; dropped when the browser did not send them.
HTTPX_DEFAULTS = ("accept", "accept-encoding", "user-agent")
PROXIED = ("/dicomweb", "/teaching/dicomweb")
CHUNK = 64 * 1024


@dataclass
class Site:
    """What one server serves: the dist folder, the app-config text (set once the port, and
    so the roots, are known), and where proxied paths go (None: no proxy)."""

    dist: Path
    upstream: str | None = None
    app_config: str = ""
    client: httpx.Client | None = None
    served: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.served.append((method, path, status))


class Handler(BaseHTTPRequestHandler):
    """One request: proxied, the app-config, a file of dist, or index.html for a route."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a real front server offers
    server_version = "ohif-test-server"
    site: ClassVar[Site]

    def do_GET(self) -> None:
        self.dispatch(body=True)

    def do_HEAD(self) -> None:
        self.dispatch(body=False)

    def do_POST(self) -> None:
        self.dispatch(body=True)

    def do_OPTIONS(self) -> None:
        self.dispatch(body=True)

    def dispatch(self, body: bool) -> None:
        """Routes the request. A browser that drops a connection mid-answer is no error of
        the site's; an upstream that cannot be reached is a 502 the browser will report."""
        try:
            self.route(urlsplit(self.path).path, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def route(self, path: str, body: bool) -> None:
        if self.site.upstream and is_proxied(path):
            self.proxy(body)
        elif self.command not in ("GET", "HEAD"):
            self.answer(405, b"", "text/plain", body)
        elif path == "/app-config.js":
            self.answer(200, self.site.app_config.encode(), CONTENT_TYPES[".js"], body)
        else:
            self.static(unquote(path), body)

    def answer(self, status: int, content: bytes, content_type: str, body: bool) -> None:
        self.send_response_only(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(content)
        self.site.record(self.command, self.path, status)

    def static(self, path: str, body: bool) -> None:
        """A file of dist; any other page the browser navigates to is a route of the app:
        index.html. Only navigations get it (they accept text/html): a script's request for
        a missing file or a misdirected DICOMweb call is a 404, not a page of HTML."""
        dist = self.site.dist
        target = (dist / path.lstrip("/")).resolve()
        if not target.is_relative_to(dist) or not target.is_file():
            if "text/html" not in self.headers.get("Accept", ""):
                self.answer(404, b"not found\n", "text/plain", body)
                return
            target = dist / "index.html"
        content_type = CONTENT_TYPES.get(target.suffix) or (
            mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        )
        self.send_response_only(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(target.stat().st_size))
        self.end_headers()
        if body:
            with target.open("rb") as handle:
                shutil.copyfileobj(handle, self.wfile, CHUNK)
        self.site.record(self.command, self.path, 200)

    def proxy(self, body: bool) -> None:
        """Forwards the request to our server and streams the answer back unchanged (gzip
        included), chunked when the upstream gave no length."""
        assert self.site.client is not None and self.site.upstream is not None
        length = int(self.headers.get("Content-Length") or 0)
        request = self.site.client.build_request(
            self.command,
            self.site.upstream + self.path,
            headers=self.forwarded_headers(),
            content=self.rfile.read(length) if length else None,
        )
        # httpx adds defaults of its own (Accept-Encoding: gzip among them): a proxy must
        # not ask for what the client did not, or it would relay gzip to a client without it.
        for name in HTTPX_DEFAULTS:
            if name not in self.headers:
                request.headers.pop(name, None)
        try:
            response = self.site.client.send(request, stream=True)
        except httpx.TransportError as exc:
            self.answer(502, f"upstream unreachable: {exc}\n".encode(), "text/plain", body)
            return
        try:
            self.relay(response, body and self.command != "HEAD")
        except httpx.TransportError:
            self.close_connection = True  # the answer is cut short: the browser sees it fail
        finally:
            response.close()
        self.site.record(self.command, self.path, response.status_code)

    def forwarded_headers(self) -> list[tuple[str, str]]:
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        headers.append(("X-Forwarded-Host", self.headers.get("Host", "")))
        headers.append(("X-Forwarded-Proto", "http"))
        headers.append(("X-Forwarded-For", self.client_address[0]))
        return headers

    def relay(self, response: httpx.Response, body: bool) -> None:
        self.send_response_only(response.status_code, response.reason_phrase)
        for name, value in response.headers.multi_items():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        no_body = response.status_code in (204, 304) or not body
        chunked = "content-length" not in response.headers and not no_body
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if no_body:
            return
        for chunk in response.iter_raw(CHUNK):
            if not chunk:
                continue  # an empty chunk would end a chunked body early
            if chunked:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            else:
                self.wfile.write(chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the served requests are kept in ``site.served`` instead."""


def is_proxied(path: str) -> bool:
    return any(path == root or path.startswith(root + "/") for root in PROXIED)


@contextmanager
def viewer_server(dist: Path, upstream: str | None = None) -> Iterator[tuple[str, Site]]:
    """Serves ``dist`` on a free loopback port (and proxies our DICOMweb roots to
    ``upstream`` when given); yields the base URL and the Site, whose ``app_config`` the
    caller sets before the browser asks for it."""
    site = Site(dist=dist.resolve(), upstream=upstream.rstrip("/") if upstream else None)
    if upstream:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        site.client = httpx.Client(timeout=60, limits=limits, follow_redirects=False)
    handler = type("SiteHandler", (Handler,), {"site": site})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="ohif-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        if site.client is not None:
            site.client.close()
