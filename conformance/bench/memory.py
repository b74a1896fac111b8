"""The server's resident memory, sampled through the run, found from its listening port.

The benchmark is black-box (a URL), but on the same machine the kernel knows which
processes hold the socket listening on that port: every worker of a pre-forking server
shares it, so the sum of their resident sets is the server's memory. Where the server is
on another machine (or /proc is not readable) the figure is reported as unknown rather
than guessed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"


def listening_inodes(port: int) -> set[str]:
    """Socket inodes in LISTEN state on ``port`` (IPv4 and IPv6)."""
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (PROC / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def server_pids(port: int) -> set[int]:
    """Processes holding a socket that listens on ``port``."""
    targets = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    pids = set()
    if not targets:
        return pids
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:
            continue
        if any(_link(fd) in targets for fd in descriptors):
            pids.add(int(entry.name))
    return pids


def _link(descriptor: Path) -> str | None:
    """What a descriptor points to; None once it is closed (a busy server closes connections
    while it is scanned, which must not hide the process)."""
    try:
        return os.readlink(descriptor)
    except OSError:
        return None


def resident_bytes(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in (PROC / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class PeakMemory:
    """Samples the summed resident set of a server's processes until stopped."""

    def __init__(self, port: int, interval: float = 0.1) -> None:
        self.pids = server_pids(port)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def known(self) -> bool:
        return bool(self.pids)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, resident_bytes(self.pids))
            self._stop.wait(self.interval)

    def start(self) -> PeakMemory:
        if self.known:
            self._thread.start()
        return self

    def stop(self) -> int | None:
        """The peak in bytes, or None when the server's processes were not found."""
        if not self.known:
            return None
        self._stop.set()
        self._thread.join()
        return self.peak
