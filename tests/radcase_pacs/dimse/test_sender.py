"""The C-MOVE destination's association keeps every C-STORE response for the sub-operation
waiting for it, even when pynetdicom's reactor thread polls in the middle of the exchange (the
race radcase_pacs.dimse.sender describes, held open here instead of waited for)."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import CTImageStorage

from radcase_pacs.dimse.sender import AnswersForTheSender, keep_answers_for_the_sender
from radcase_pacs.dimse.server import no_delay
from tests.factories import make_instance

STORES = 30


class NeverCleared(threading.Event):
    """A checkpoint the sender cannot close: the reactor keeps polling while it waits."""

    def clear(self) -> None:
        pass


class AlwaysPausedToTheSender(Association):
    """An association whose reactor always reads as paused, so the sender never waits for it:
    the moment of the race, made permanent."""

    @property
    def _is_paused(self) -> bool:
        return True

    @_is_paused.setter
    def _is_paused(self, value: bool) -> None:
        pass


@pytest.fixture
def storage_scp() -> Iterator[int]:
    ae = AE(ae_title="DEST")
    ae.add_supported_context(CTImageStorage, ImplicitVRLittleEndian)
    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000), (evt.EVT_CONN_OPEN, no_delay)],
    )
    yield server.server_address[1]
    server.shutdown()


def racing_association(port: int) -> Any:
    ae = AE(ae_title="RADCASE")
    ae.add_requested_context(CTImageStorage, ImplicitVRLittleEndian)
    ae.dimse_timeout = 5
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="DEST",
        evt_handlers=[
            (evt.EVT_CONN_OPEN, no_delay),
            (evt.EVT_CONN_OPEN, keep_answers_for_the_sender),
        ],
    )
    assert assoc.is_established
    assoc._reactor_checkpoint = NeverCleared()
    assoc._reactor_checkpoint.set()
    assoc.__class__ = AlwaysPausedToTheSender
    return assoc


def test_every_c_store_gets_its_response_while_the_reactor_polls(storage_scp: int) -> None:
    assoc = racing_association(storage_scp)
    ds = make_instance()
    try:
        statuses = [assoc.send_c_store(ds).get("Status") for _ in range(STORES)]
    finally:
        assoc.release()
    assert statuses == [0x0000] * STORES


def request_item() -> tuple[int, C_STORE]:
    message = C_STORE()
    message.MessageID = 1
    message.AffectedSOPClassUID = CTImageStorage
    message.AffectedSOPInstanceUID = "1.2.3"
    message.Priority = 2
    message.DataSet = io.BytesIO()
    return 1, message


def response_item() -> tuple[int, C_STORE]:
    message = C_STORE()
    message.MessageIDBeingRespondedTo = 1
    message.Status = 0x0000
    return 1, message


def test_a_poll_takes_requests_and_leaves_responses_and_wake_ups_to_the_sender() -> None:
    messages = AnswersForTheSender()
    request, response = request_item(), response_item()
    messages.put(request)
    assert messages.get(block=False) is request
    for item in (response, (None, None)):
        messages.put(item)
        with pytest.raises(queue.Empty):
            messages.get(block=False)
        assert messages.get(timeout=1) is item
    with pytest.raises(queue.Empty):
        messages.get(block=False)
