"""Ending the DIMSE listener's associations when ``serve`` stops, never in the middle of an
operation (:mod:`radcase_pacs.drain` for the whole sequence).

Once the listener no longer accepts, an open association is a unit of work its requestor is
still doing (a modality sending a study): it is left to end by itself (A-RELEASE) until the
deadline. Then each one still open is aborted (A-ABORT, PS3.8 §7.3) between two operations:
at once when idle, else just after the operation under way has sent its response. An
operation is under way from the first P-DATA-TF PDU of its request (PS3.8 §9.3.5) to its
last response, so a C-STORE whose data set is still arriving is received, stored and
acknowledged, and one that has not begun is never half done.
A requestor whose association is aborted knows its remaining requests were not served and
sends them again later; what it was told was stored, was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from weakref import WeakKeyDictionary

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.transport import ThreadedAssociationServer

from radcase_pacs.dimse.statuses import status_dataset
from storage.statuses import DimseStatus

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.2
"""How long an association must have been idle before it is aborted from outside: after an
operation's handler returns, pynetdicom's thread still has to queue the response, and an
abort queued before it would take its place."""

SHUTTING_DOWN = "the server is shutting down"


class Operations:
    """The operations under way on each association, and the closing of them all."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._busy: WeakKeyDictionary[Association, int] = WeakKeyDictionary()
        self._ended: WeakKeyDictionary[Association, float] = WeakKeyDictionary()
        self._receiving: WeakKeyDictionary[Association, bool] = WeakKeyDictionary()
        self._closing = False

    def _enter(self, assoc: Association) -> bool:
        """Count an operation starting; False (and the association aborted) when it began
        to arrive only after the closing did."""
        with self._lock:
            refused = self._closing and not self._receiving.get(assoc, False)
            if not refused:
                self._busy[assoc] = self._busy.get(assoc, 0) + 1
            self._receiving[assoc] = False
        if refused:
            assoc.abort()  # inside a handler: queued, sent before anything else of ours
        return not refused

    def _leave(self, assoc: Association) -> None:
        with self._lock:
            self._busy[assoc] = self._busy.get(assoc, 1) - 1
            self._ended[assoc] = self.clock()

    def on_pdu(self, event: evt.Event) -> None:
        """EVT_PDU_RECV: a P-DATA-TF PDU between operations is a request arriving; once
        closing, that request is not served (the association is aborted there, its previous
        response being sent already: the requestor waited for it)."""
        if not isinstance(event.pdu, P_DATA_TF):
            return
        assoc = event.assoc
        with self._lock:
            if self._busy.get(assoc, 0) or self._receiving.get(assoc, False):
                return
            refused = self._closing
            if not refused:
                self._receiving[assoc] = True
        if refused:
            assoc.abort()

    def counted(self, handler: Callable[[evt.Event], Any]) -> Callable[[evt.Event], Any]:
        """A handler that answers one response (C-STORE, C-ECHO), counted while it runs and
        refused (0xA700, never sent: the association is aborted first) once closing."""

        def handle(event: evt.Event) -> Any:
            if not self._enter(event.assoc):
                return status_dataset(DimseStatus.OUT_OF_RESOURCES, SHUTTING_DOWN)
            try:
                return handler(event)
            finally:
                self._leave(event.assoc)

        return handle

    def counted_iter(
        self, handler: Callable[[evt.Event], Iterator[Any]]
    ) -> Callable[[evt.Event], Iterator[Any]]:
        """A generator handler (C-FIND, C-MOVE, C-GET), counted until its last response.
        These only read: one started as its association is aborted is merely cut short."""

        def handle(event: evt.Event) -> Iterator[Any]:
            with self._lock:
                self._busy[event.assoc] = self._busy.get(event.assoc, 0) + 1
                self._receiving[event.assoc] = False
            return self._counting(event.assoc, handler(event))

        return handle

    def _counting(self, assoc: Association, responses: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from responses
        finally:
            self._leave(assoc)

    def _idle(self, assoc: Association, now: float) -> bool:
        with self._lock:
            if self._busy.get(assoc, 0) or self._receiving.get(assoc, False):
                return False
            ended = self._ended.get(assoc)
        return ended is None or now - ended >= SETTLE_SECONDS

    def finish(self, server: ThreadedAssociationServer, until: float, stop: float) -> None:
        """Let the open associations of ``server`` (no longer accepting) end by themselves
        until ``until``, then abort each between two operations, giving up at ``stop``
        (``clock()`` instants)."""
        while server.active_associations and self.clock() < until:
            time.sleep(0.1)
        open_ones = server.active_associations
        if not open_ones:
            return
        log.info("%d DIMSE association(s) still open: aborted between operations", len(open_ones))
        with self._lock:
            self._closing = True
        while open_ones and self.clock() < stop:
            now = self.clock()
            for assoc in open_ones:
                if assoc.is_established and self._idle(assoc, now):
                    assoc.abort()
            time.sleep(0.05)
            open_ones = server.active_associations
        if open_ones:
            log.warning("%d DIMSE association(s) still busy at exit: cut", len(open_ones))
