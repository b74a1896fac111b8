"""Known remote Application Entities: where C-MOVE sends, and which calling AEs may connect.

Peers come from one text form, ``AET=host:port`` items separated by commas, the same in the
TOML file and in ``RADCASE_DIMSE_PEERS`` (e.g. ``PACS1=10.0.0.5:104,WS2=127.0.0.1:4006``), so
an administrator writes them once and can paste them anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


class PeerSyntaxError(ValueError):
    """A peer list that cannot be read; the message names the item."""


@dataclass(frozen=True, slots=True)
class Peer:
    ae_title: str
    host: str
    port: int


def check_ae_title(value: str) -> str:
    """PS3.5 Table 6.2-1 (AE): 1-16 characters of the default repertoire, no backslash or
    control characters; leading and trailing spaces are not significant."""
    title = value.strip()
    if not title or len(title) > 16 or "\\" in title or any(ord(c) < 32 for c in title):
        raise PeerSyntaxError(f"{value!r} is not an AE title (1-16 printable characters)")
    if not title.isascii():
        raise PeerSyntaxError(f"{value!r} is not an AE title (ASCII characters only)")
    return title


def parse_peers(text: str) -> dict[str, Peer]:
    """``AET=host:port,...`` to peers by AE title; an empty text means no peers."""
    peers: dict[str, Peer] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        title, sep, address = item.partition("=")
        host, colon, port_text = address.strip().rpartition(":")
        if not sep or not colon or not host:
            raise PeerSyntaxError(f"peer {item!r} is not of the form AET=host:port")
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise PeerSyntaxError(f"peer {item!r}: {port_text!r} is not a port (1-65535)")
        title = check_ae_title(title)
        if title in peers:
            raise PeerSyntaxError(f"peer {title!r} is given more than once")
        peers[title] = Peer(title, host.strip("[]"), int(port_text))
    return peers


def parse_ae_titles(text: str) -> frozenset[str]:
    """A comma-separated list of AE titles (the calling-AE allow-list)."""
    return frozenset(check_ae_title(t) for t in text.split(",") if t.strip())
