"""Closing an HTTP listener without resetting a connection a balancer has already sent a
request on.

When a listening socket closes, the kernel resets every connection still in its accept queue:
their handshake is complete, so the balancer has sent its request, and nginx answers a POST
it cannot retry (a STOW-RS) with 502. uvicorn then also closes each connection that carries
no request yet, including one accepted a moment ago whose request is still on its way. While
draining, every answer says ``Connection: close``, so a balancer opens a new connection for
each request it still sends here, and one of them is often at one of those two stages as the
listener closes.

So the listener is first made to take no new connection: a classic BPF program that drops
every packet reaching it drops each SYN, whose sender retries it a second later and then finds
the port closed, and tries another instance (nothing of the request was sent). The connections
already complete are taken from the queue and their requests read and served; only then does
uvicorn close the listener. A program attached to a socket filters what reaches that socket
alone, so the connections already made (each a socket of its own) are not affected.
"""

from __future__ import annotations

import asyncio
import ctypes
import socket
import struct
from collections.abc import Collection, Iterable
from typing import Any

SO_ATTACH_FILTER = 26
"""Linux's socket option to attach a classic BPF program (``<asm-generic/socket.h>``)."""

_DROP_EVERY_PACKET = struct.pack("HBBI", 0x06, 0, 0, 0)
"""One BPF instruction, ``BPF_RET | BPF_K`` with 0: keep 0 bytes of the packet, i.e. drop it."""

_TCPI_UNACKED = 24
"""Offset of ``tcpi_unacked`` in ``struct tcp_info``: for a listening socket, the number of
connections waiting in its accept queue."""

TAKE_IN_LIMIT = 1.0
"""Longest wait, in seconds, for the accept queue to empty and for the requests of the
connections taken from it to arrive. A connection that has sent nothing by then is closed."""


def refuse_new_connections(listener: Any) -> bool:
    """Drop every new connection's SYN on ``listener`` (a socket, or asyncio's view of one);
    False when it is not a TCP socket or the program cannot be attached."""
    if listener.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    program = ctypes.create_string_buffer(_DROP_EVERY_PACKET, len(_DROP_EVERY_PACKET))
    fprog = struct.pack("HP", 1, ctypes.addressof(program))
    try:
        listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def waiting_to_be_accepted(listeners: Iterable[Any]) -> int:
    """How many complete connections wait in the accept queues of ``listeners``."""
    total = 0
    for listener in listeners:
        try:
            info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        except OSError:
            continue
        total += struct.unpack_from("I", info, _TCPI_UNACKED)[0]
    return total


def awaiting_a_request(connection: Any) -> bool:
    """Whether a uvicorn HTTP connection has not yet received its first request's head."""
    return getattr(connection, "cycle", False) is None


async def take_in(listeners: Iterable[Any], connections: Collection[Any]) -> None:
    """Refuse new connections on ``listeners``, then wait, at most :data:`TAKE_IN_LIMIT`
    seconds, until none waits in their accept queues and every one of ``connections`` (the
    server's own, a live set) has its request's head; the caller then closes the listeners."""
    refusing = [listener for listener in listeners if refuse_new_connections(listener)]
    if not refusing:
        return
    loop = asyncio.get_running_loop()
    until = loop.time() + TAKE_IN_LIMIT
    while loop.time() < until and (
        waiting_to_be_accepted(refusing) or any(awaiting_a_request(c) for c in connections)
    ):
        await asyncio.sleep(0.01)
