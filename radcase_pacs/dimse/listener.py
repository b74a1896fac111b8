"""The DIMSE listening socket and the admission of what connects to it.

Hospital networks run vulnerability scanners against ports 104 and 11112, and broken peers send
garbage or close at once. Nothing of that may keep a modality from associating, so admission
is in three steps, each bounded:

1. **A connection is not an association.** Each accepted connection first waits, in its own
   short-lived thread, for the header of its first PDU: an A-ASSOCIATE-RQ within the ARTIM time
   (PS3.8 §9.1.5, ``dimse_artim_timeout``, a few seconds). Silence, garbage, another PDU type,
   an announced length beyond reason, or a close end it there (with an A-ABORT where PS3.8
   Table 9-10 gives one, AA-1), before pynetdicom builds an association for it
   (:mod:`radcase_pacs.dimse.pdu_guard`).
2. **An association request takes a slot** (:mod:`radcase_pacs.dimse.slots`): at most
   ``dimse_max_associations`` at once and ``dimse_max_associations_per_address`` from one
   calling address, else A-ASSOCIATE-RJ rejected-transient, local-limit-exceeded (PS3.8 Table
   9-21). The slot is given back the moment the association is rejected, released or aborted
   or its connection closes.
3. **Every later PDU is checked as it arrives**: a header announcing more than the Maximum
   Length we announced (``dimse_max_pdu``, PS3.8 Annex D.1) ends the association with an
   A-ABORT before its body is read.

pynetdicom's own limit counts association threads, among them those of peers still sending
their request; it is set out of the way (:data:`PYNETDICOM_CEILING`) so that only the slots,
which count associations, decide.
"""

from __future__ import annotations

import logging
import socketserver
from dataclasses import dataclass
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.ae import ApplicationEntity
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from radcase_pacs.dimse.pdu_guard import GuardedSocket
from radcase_pacs.dimse.slots import AssociationSlots
from radcase_pacs.dimse.wakeups import wake_on_work

log = logging.getLogger(__name__)

# Far above any number of threads a process can run: pynetdicom then never refuses on its own.
PYNETDICOM_CEILING = 1_000_000
# PS3.8 Table 9-21: rejected-transient (2), DICOM UL service-provider, presentation related
# function (3), local-limit-exceeded (2).
LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)


@dataclass(frozen=True)
class Admission:
    """What a connection must do to be admitted, from the settings."""

    artim: float
    """Seconds from the connection to a complete A-ASSOCIATE-RQ (``dimse_artim_timeout``)."""
    network_timeout: float
    """Seconds a peer may stay silent in the middle of a PDU (``dimse_network_timeout``)."""
    max_pdu: int
    """Longest PDU accepted after the A-ASSOCIATE-RQ (``dimse_max_pdu``; 0: any)."""
    slots: AssociationSlots


class GatedRequestHandler(RequestHandler):
    """pynetdicom's acceptor, started only for a connection whose first PDU header announces an
    acceptable A-ASSOCIATE-RQ within the ARTIM time."""

    server: Listener

    def handle(self) -> None:
        admission = self.server.admission
        sock = GuardedSocket.adopt(
            self.request,
            artim=admission.artim,
            network_timeout=admission.network_timeout,
            max_pdu=admission.max_pdu,
        )
        self.request = sock
        refusal = sock.wait_for_associate_request()
        if refusal is not None:
            log.info("DIMSE connection from %s closed: %s", sock.peer, refusal.detail)
            sock.refuse(refusal)
            sock.close()
            return
        super().handle()

    def _create_association(self) -> Association:
        """pynetdicom's acceptor, made to wait on events rather than poll for them
        (:mod:`radcase_pacs.dimse.wakeups`)."""
        assoc = super()._create_association()
        wake_on_work(assoc)
        return assoc


class CopiedCheaply(PresentationContext):
    """A supported presentation context that copies itself in a few microseconds.

    pynetdicom gives each association a deep copy of every context the server supports, for
    negotiation to fill in: with every storage SOP class, about 150 contexts of a dozen
    transfer syntaxes each, which took ``copy.deepcopy`` about a tenth of a second of CPU per
    association. The UIDs in a context are immutable strings; only its list of transfer
    syntaxes needs a copy of its own."""

    @classmethod
    def of(cls, context: PresentationContext) -> CopiedCheaply:
        twin = cls()
        twin.__dict__.update(context.__dict__)
        twin._transfer_syntax = list(context._transfer_syntax)
        return twin

    def __deepcopy__(self, memo: dict[int, Any]) -> CopiedCheaply:
        return CopiedCheaply.of(self)


class Listener(ThreadedAssociationServer):
    """The DIMSE port: connections admitted as the module says, one thread each."""

    # The listen backlog: a burst of scanner connections must not fill it and make a
    # modality's connection wait for a SYN retransmission (TCPServer's default is 5).
    request_queue_size = 128
    # A connection still in its ARTIM time holds a thread; stopping never waits for it.
    daemon_threads = True

    def __init__(
        self,
        ae: ApplicationEntity,
        address: tuple[str, int],
        ae_title: str,
        contexts: list[PresentationContext],
        ssl_context: Any = None,
        evt_handlers: list[evt.EventHandlerType] | None = None,
        *,
        admission: Admission,
    ) -> None:
        self.admission = admission
        super().__init__(
            ae,
            address,
            ae_title,
            [CopiedCheaply.of(context) for context in contexts],
            ssl_context,
            evt_handlers=evt_handlers,
            request_handler=GatedRequestHandler,
        )
        self.bind(evt.EVT_CONN_OPEN, self._artim_for_acceptor)
        self.bind(evt.EVT_REQUESTED, self._take_slot)
        for ended in (evt.EVT_REJECTED, evt.EVT_RELEASED, evt.EVT_ABORTED, evt.EVT_CONN_CLOSE):
            self.bind(ended, self._give_back_slot)

    def shutdown(self) -> None:
        """Stop serving and close the socket. (pynetdicom's own shutdown also unregisters the
        server from the AE that started it; :class:`DimseServer` starts this one itself.)"""
        socketserver.BaseServer.shutdown(self)
        self.server_close()

    def _artim_for_acceptor(self, event: evt.Event) -> None:
        """pynetdicom waits ``acse_timeout`` for the A-ASSOCIATE-RQ and runs its ARTIM timer
        for as long; for the associations we accept that is the short ARTIM time
        (``dimse_acse_timeout`` stays the wait for a C-MOVE destination's answers)."""
        event.assoc.acse_timeout = self.admission.artim

    def _take_slot(self, event: evt.Event) -> None:
        assoc = event.assoc
        why = self.admission.slots.take(assoc)
        if why is None:
            return
        request = cast(A_ASSOCIATE, assoc.requestor.primitive)
        log.warning(
            "association from %s (%s) rejected: %s",
            str(request.calling_ae_title).strip(),
            assoc.requestor.address,
            why,
        )
        # As pynetdicom rejects on its own: the A-ASSOCIATE-RJ is sent before the thread ends.
        assoc.acse.send_reject(*LOCAL_LIMIT_EXCEEDED)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def _give_back_slot(self, event: evt.Event) -> None:
        self.admission.slots.give_back(event.assoc)
