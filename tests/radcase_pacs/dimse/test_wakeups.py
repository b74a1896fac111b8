"""Associations wait on events: what rings the DUL thread's doorbell and raises the
association thread's flag, and the doorbell of each association closed when it ends."""

from __future__ import annotations

import os
import queue
import select
import threading

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from radcase_pacs.dimse.server import DimseServer
from radcase_pacs.dimse.wakeups import Doorbell, RingingQueue, WaitingQueue, WakingSocket


def _rung(bell: Doorbell) -> bool:
    readable, _, _ = select.select([bell], [], [], 0)
    return bool(readable)


def test_a_doorbell_rings_until_cleared_and_is_silent_once_closed() -> None:
    bell = Doorbell()
    assert not _rung(bell)
    bell.ring()
    bell.ring()
    assert _rung(bell)
    bell.clear()
    assert not _rung(bell)
    bell.close()
    bell.ring()  # a late primitive after the association ended: nothing happens
    bell.clear()
    with pytest.raises(ValueError):
        bell.fileno()


def test_a_primitive_queued_for_sending_rings_the_doorbell() -> None:
    bell = Doorbell()
    outgoing = RingingQueue(bell.ring)
    outgoing.put("P-DATA")
    assert _rung(bell)
    assert outgoing.queue[0] == "P-DATA"  # pynetdicom peeks at the deque itself
    bell.close()


def test_the_message_queue_hands_over_a_message_put_while_it_waits() -> None:
    flag = threading.Event()
    messages = WaitingQueue(flag)
    with pytest.raises(queue.Empty):
        messages.get(block=False)
    threading.Timer(0.01, messages.put, args=[(1, "C-STORE-RQ")]).start()
    assert messages.get(block=False) == (1, "C-STORE-RQ")


def test_a_release_request_raises_the_association_threads_flag() -> None:
    flag = threading.Event()
    RingingQueue(flag.set).put("A-RELEASE")
    assert flag.is_set()


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_every_association_waits_on_events_and_closes_its_doorbell(dimse: DimseServer) -> None:
    sockets: list[type] = []
    dimse._server.bind(  # type: ignore[union-attr]
        evt.EVT_ACCEPTED, lambda event: sockets.append(type(event.assoc.dul.socket))
    )
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    before = _open_descriptors()
    for _ in range(5):
        assoc = ae.associate("127.0.0.1", dimse.port, ae_title=dimse.settings.ae_title)
        assert assoc.is_established
        status = assoc.send_c_echo()
        assert status.Status == 0x0000
        assoc.release()
        assert assoc.is_released
    dimse.stop(until=0)  # waits for the associations' threads to end
    assert sockets == [WakingSocket] * 5
    assert _open_descriptors() <= before
