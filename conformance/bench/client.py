"""A lean HTTP/1.1 client for load: one keep-alive connection per worker thread.

The benchmark shares two cores with the servers it measures, so the client must cost as
little as possible and the same for both servers: the standard library's ``http.client``
on persistent connections, bodies read in large chunks and counted rather than parsed.
Every request's latency and outcome is recorded; any status >= 400 or transport error is
an error of the server under test (the benchmark sends only valid requests).
"""

from __future__ import annotations

import http.client
import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

CHUNK = 1 << 20


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]
    seconds: float


@dataclass
class Tally:
    """Errors seen by one server during the run, with the first few for the report."""

    count: int = 0
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str) -> None:
        with self.lock:
            self.count += 1
            if len(self.examples) < 5:
                self.examples.append(what)


class Server:
    """A DICOMweb root: requests go to ``base`` + path on per-thread connections."""

    def __init__(self, base: str, errors: Tally | None = None, timeout: float = 120) -> None:
        parts = urlsplit(base.rstrip("/"))
        self.base = base.rstrip("/")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path
        self.timeout = timeout
        self.errors = errors or Tally()
        self.headers: dict[str, str] = {}
        """Sent with every request (an ``Authorization`` for a server with auth on)."""
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.connection = connection
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def request(
        self,
        method: str,
        path: str,
        *,
        accept: str = "*/*",
        body: bytes | None = None,
        content_type: str | None = None,
        keep_body: bool = True,
    ) -> Response:
        """One request; the body is read whole (counted only when ``keep_body`` is false, so a
        large retrieval is measured without holding it in memory)."""
        headers = {**self.headers, "Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        url = path if path.startswith("http") else self.prefix + path
        started = time.perf_counter()
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, url, body=body, headers=headers)
                answer = connection.getresponse()
                if keep_body:
                    data = answer.read()
                else:
                    size = 0
                    while chunk := answer.read(CHUNK):
                        size += len(chunk)
                    data = size.to_bytes(8, "little")
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server closed while idle: reconnect once.
                self._drop()
                if attempt == 2:
                    raise
        seconds = time.perf_counter() - started
        response = Response(answer.status, data, dict(answer.getheaders()), seconds)
        if answer.status >= 400:
            self.errors.add(f"{method} {url} -> {answer.status}")
        if answer.will_close:
            self._drop()
        return response

    def get(self, path: str, accept: str = "*/*", *, keep_body: bool = True) -> Response:
        try:
            return self.request("GET", path, accept=accept, keep_body=keep_body)
        except OSError as exc:
            self._drop()
            self.errors.add(f"GET {path}: {exc!r}")
            return Response(0, b"", {}, 0.0)

    def post(self, path: str, body: bytes, content_type: str, accept: str) -> Response:
        try:
            return self.request("POST", path, accept=accept, body=body, content_type=content_type)
        except OSError as exc:
            self._drop()
            self.errors.add(f"POST {path}: {exc!r}")
            return Response(0, b"", {}, 0.0)

    def close(self) -> None:
        self._drop()


def concurrently(workers: int, jobs: Sequence[Callable[[], Response]]) -> tuple[list[float], float]:
    """Run ``jobs`` on ``workers`` threads; the latency of each and the wall time of all."""
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        latencies = [r.seconds for r in pool.map(lambda job: job(), jobs)]
    return latencies, time.perf_counter() - started


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
