"""Association slots: ``dimse_max_associations`` counted over associations, not connections,
with a share per calling address (``dimse_max_associations_per_address``).

A slot is taken once a peer's A-ASSOCIATE-RQ has arrived (PS3.8 §9.2, Table 9-10: Sta2 + Evt6)
and given back as soon as the association is rejected, released or aborted or its connection
closes. A connection that has not sent its request holds none, so neither a port scanner nor a
peer that connects and says nothing can make a modality's association be refused; and one
address (a misbehaving gateway, a scanner that does send requests) cannot take every slot.

When no slot is left the request is rejected as PS3.8 Table 9-21 provides: rejected-transient,
source DICOM UL service-provider (presentation related function), local-limit-exceeded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pynetdicom.association import Association


@dataclass(frozen=True)
class _Holder:
    association: Association
    address: str


class AssociationSlots:
    """Slots for at most ``total`` associations at once, at most ``per_address`` of them from
    one calling address. Thread-safe: every acceptor thread takes and gives back its own."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = min(per_address, total)
        self._held: dict[int, _Holder] = {}
        self._lock = threading.Lock()

    def take(self, association: Association) -> str | None:
        """Take a slot for ``association``; None when taken, else why none is left."""
        address = str(association.requestor.address)
        with self._lock:
            self._forget_ended()
            if len(self._held) >= self.total:
                return f"all {self.total} associations are in use"
            mine = sum(1 for h in self._held.values() if h.address == address)
            if mine >= self.per_address:
                return f"{address} already holds {mine} associations, its share"
            self._held[id(association)] = _Holder(association, address)
        return None

    def give_back(self, association: Association) -> None:
        """Free the slot of ``association``; nothing if it holds none (already given back)."""
        with self._lock:
            self._held.pop(id(association), None)

    def in_use(self) -> int:
        with self._lock:
            self._forget_ended()
            return len(self._held)

    def _forget_ended(self) -> None:
        """Slots of associations whose thread has ended without an event saying so (a fault in
        the upper layer's own thread): given back rather than kept forever."""
        for key in [k for k, h in self._held.items() if not h.association.is_alive()]:
            del self._held[key]
