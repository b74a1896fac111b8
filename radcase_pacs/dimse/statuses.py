"""DIMSE status data sets, and what an unexpected fault in a handler answers.

The codes, and the one table from the archive's errors to them, are in
:mod:`storage.statuses` (STOW-RS reports the same codes as FailureReason). Here:

- :func:`status_dataset`: a status with its Error Comment;
- :func:`archive_failure`: the status of an :class:`~storage.errors.ArchiveError`;
- :func:`faults_logged` and :func:`faults_logged_iter`: the log line that names the
  association when a handler fails.

An exception that a handler does not expect is not answered here. It propagates to
pynetdicom's wrapper around the handler (pynetdicom 3.0.4, ``service_class.py``), which logs
the traceback and answers the service's own failure status, in the 0xCxxx failure range of
each service (PS3.4 B.2.3 "Cannot understand"; C.4.1.1.4, C.4.2.1.5 and C.4.3.1.4 "Unable to
process"): C-STORE 0xC211; C-FIND 0xC311; C-GET 0xC411, or 0xC413 before the sub-operation
count is known; C-MOVE 0xC511, or 0xC514 and 0xC513 before the destination and the count are
known. Answering 0xC000 "cannot read the identifier" instead would tell the peer its request
was wrong when the fault is ours, and hide the fault from the operator.

pynetdicom's own log lines do not say which association failed; the wrappers log one that
does (calling AE title, address and port), with the traceback, and re-raise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pynetdicom import evt

from storage.errors import ArchiveError
from storage.statuses import dimse_status

log = logging.getLogger(__name__)

ERROR_COMMENT_LIMIT = 64
T = TypeVar("T")


def status_dataset(code: int, comment: str | None = None) -> Dataset:
    """A status with Error Comment (0000,0902: LO, at most 64 characters, PS3.7 Annex C)."""
    ds = Dataset()
    ds.Status = int(code)
    if comment:
        ds.ErrorComment = comment.encode("ascii", "replace").decode()[:ERROR_COMMENT_LIMIT]
    return ds


def archive_failure(exc: ArchiveError) -> Dataset:
    """The one DIMSE status of ``exc`` (:data:`storage.statuses.DIMSE_STATUS_BY_ERROR`),
    with its text as the Error Comment."""
    return status_dataset(dimse_status(exc), str(exc))


def association(event: evt.Event) -> str:
    """The peer of the event's association, as an operator looks it up: ``AE (host:port)``."""
    requestor = event.assoc.requestor
    title = str(requestor.ae_title or "").strip() or "?"
    return f"{title} ({requestor.address}:{requestor.port})"


def faults_logged(service: str, handler: Callable[[evt.Event], T]) -> Callable[[evt.Event], T]:
    """``handler`` (C-STORE), logging an unexpected exception with the association
    before pynetdicom answers it."""

    def handle(event: evt.Event) -> T:
        try:
            return handler(event)
        except Exception:
            _log_fault(service, event)
            raise

    return handle


def faults_logged_iter(
    service: str, handler: Callable[[evt.Event], Iterator[Any]]
) -> Callable[[evt.Event], Iterator[Any]]:
    """The generator ``handler`` (C-FIND, C-MOVE, C-GET), logging an unexpected exception
    with the association before pynetdicom answers it."""

    def handle(event: evt.Event) -> Iterator[Any]:
        try:
            yield from handler(event)
        except Exception:
            _log_fault(service, event)
            raise

    return handle


def _log_fault(service: str, event: evt.Event) -> None:
    log.exception(
        "%s from %s failed on our side; pynetdicom answers the service's failure status",
        service,
        association(event),
    )
