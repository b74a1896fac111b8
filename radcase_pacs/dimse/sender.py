"""The association a C-MOVE opens to its destination: every C-STORE response reaches the
sub-operation that waits for it.

pynetdicom runs a reactor thread on each association it requests. Before it sends a C-STORE
and waits for the response, the sending thread pauses that reactor: it clears a checkpoint,
then waits for the reactor's "paused" flag. The flag is still raised for a moment after the
checkpoint of the previous sub-operation let the reactor go: a sender that checks it in that
moment sends at once, and the reactor, now running, polls the DIMSE queue for a request to
serve. On a loaded machine the reactor thread can lose the processor for longer than the
destination takes to answer, and its poll then takes the C-STORE response ("Received
unexpected C-STORE service message"); the sender waits its whole DIMSE timeout, aborts, and
every sub-operation after it fails.

Here the reactor's poll (a non-blocking get) takes only requests, the messages it serves;
responses, and the empty item pynetdicom queues on an abort to wake a waiting sender, stay for
the sender's blocking get. A destination never sends requests on this association, so the
reactor has nothing to take, as intended.
"""

from __future__ import annotations

import queue
from typing import Any

from pynetdicom import evt


class AnswersForTheSender(queue.Queue[Any]):
    """pynetdicom's DIMSE message queue, of (context ID, message) items, whose non-blocking
    get answers Empty unless the next item is a request."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if block:
            return super().get(block, timeout)
        with self.not_empty:
            if not self._qsize() or not _is_request(self.queue[0]):
                raise queue.Empty
            item = self._get()
            self.not_full.notify()
            return item


def _is_request(item: tuple[int | None, Any]) -> bool:
    message = item[1]
    return message is not None and bool(message.is_valid_request)


def keep_answers_for_the_sender(event: evt.Event) -> None:
    """EVT_CONN_OPEN of a requested association: no DIMSE message has arrived yet, so the
    queue is swapped before anything is in it."""
    event.assoc.dimse.msg_queue = AnswersForTheSender()
