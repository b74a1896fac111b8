"""Separate hosts on one machine, for the tests of several server instances behind a load
balancer: each host a network namespace of its own with one address, joined to this
machine's namespace by a veth pair (a /30 link: this side ``.1``, the host ``.2``), and
relays on this side that carry a host's connections to the services listening on loopback
(PostgreSQL, Redis, moto's S3), as a network would carry a real host's.

Making namespaces takes root (``ip netns``): without it the tests are skipped, and fail
under CI (:func:`tests.backends.unavailable`). Every namespace and link is removed on exit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.backends import unavailable


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@dataclass(frozen=True)
class Host:
    """A network namespace reachable at ``address`` from ``gateway`` (this side's end)."""

    namespace: str
    link: str
    gateway: str
    address: str

    def command(self, *args: str) -> list[str]:
        """``args`` run inside the host (``ip netns exec`` executes it in place: same pid)."""
        return ["ip", "netns", "exec", self.namespace, *args]


def _free_network() -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 that no interface of this machine uses."""
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], check=True, capture_output=True, text=True
    ).stdout
    used = [ipaddress.ip_interface(word) for word in shown.split() if "/" in word]
    for _ in range(100):
        net = ipaddress.ip_network(
            f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24"
        )
        if not any(iface.ip in net or net.overlaps(iface.network) for iface in used):
            return net
    raise RuntimeError("no free 10.x.y.0/24 network for the test hosts")


@contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    """``count`` hosts, removed afterwards whatever happened."""
    if shutil.which("ip") is None:
        unavailable("the ip command (iproute2) is not installed")
    net = _free_network()
    token = secrets.token_hex(3)
    made: list[Host] = []
    try:
        for index in range(count):
            base = net.network_address + 4 * index
            host = Host(
                f"radcase-{token}-{index}", f"rc{token}{index}", str(base + 1), str(base + 2)
            )
            try:
                _ip("netns", "add", host.namespace)
            except subprocess.CalledProcessError as exc:
                unavailable(f"cannot make a network namespace: {exc.stderr.strip()}")
            made.append(host)
            peer = f"{host.link}p"
            _ip("link", "add", host.link, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", host.namespace)
            _ip("addr", "add", f"{host.gateway}/30", "dev", host.link)
            _ip("link", "set", host.link, "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/30", "dev", peer)
            _ip("-n", host.namespace, "link", "set", peer, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
        yield made
    finally:
        for host in made:
            # Deleting the namespace deletes its end of the pair, and with it this end.
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
            subprocess.run(["ip", "link", "del", host.link], capture_output=True)


class Relays:
    """TCP relays, each listening on an address of this side and connecting every accepted
    connection to a loopback service; all in one event loop on a thread of their own."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread.start()

    def add(self, listen: str, target: tuple[str, int]) -> int:
        """A relay on ``listen`` (a free port) to ``target``; its port."""

        async def start() -> asyncio.Server:
            return await asyncio.start_server(lambda r, w: self._carry(r, w, target), listen, 0)

        server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=10)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _carry(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        target: tuple[str, int],
    ) -> None:
        try:
            reader, writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        pair = {client_writer, writer}
        self._writers |= pair
        try:
            await asyncio.gather(
                self._pipe(client_reader, writer), self._pipe(reader, client_writer)
            )
        finally:
            self._writers -= pair

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Until either side closes: then both are closed."""
        try:
            while data := await source.read(256 * 1024):
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for writer in list(self._writers):
                writer.close()  # each relay's pipes end, and their tasks with them
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if tasks:
                await asyncio.wait(tasks, timeout=5)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
