"""The one error tree of the archive core.

Every edge translates these and nothing else: ``dicomweb`` and the teaching API to HTTP
status codes, the DIMSE SCP and STOW-RS to DIMSE statuses, each through the one table per
edge in :mod:`storage.statuses`. Backend drivers' own exceptions never cross the ``storage``
boundary; each backend maps them to one of these.

    ArchiveError
    ├── NotFound                 unknown study, series, instance, frame or bulk data
    ├── InvalidQuery             a query that cannot be run as given (names the parameter)
    ├── InstanceRejected         one instance refused at ingest, with a PS3.4 failure status
    │   ├── UnreadableDataset    cannot understand
    │   ├── IdentityMismatch     data set does not match (UIDs missing/invalid/mismatch)
    │   └── DuplicateConflict    same SOP Instance UID, different content
    ├── Unavailable              a stored resource exists but cannot be produced (e.g. frames of
    │                            a truncated pixel data element)
    └── BackendFailure           a store (index, blobs, cache) failed; not the client's fault
        ├── BackendUnavailable   a store did not answer within its bound, or is known to be
        │                        down: try again after ``retry_after`` seconds
        ├── OutOfResources       a store is full or over a limit
        └── ReadOnly             the deployment refuses writes for a few seconds (a switch
                                 to other stores); try again after ``retry_after``
"""

from __future__ import annotations


class ArchiveError(Exception):
    """Base of every error the archive core raises on purpose."""


class NotFound(ArchiveError):
    """The addressed resource does not exist (for this tenant)."""


class InvalidQuery(ArchiveError):
    """A query parameter or key that cannot be matched; ``parameter`` names it."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


class InstanceRejected(ArchiveError):
    """One instance was refused at ingest; the others of the same request go on.

    Its PS3.4 Annex B / PS3.18 Table 10.5.3-2 failure reason, which both STOW-RS
    (FailureReason) and C-STORE (Status) report, is :func:`storage.statuses.dimse_status`.
    """

    def __init__(self, reason: str, *, sop_class_uid: str = "", sop_instance_uid: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid


class UnreadableDataset(InstanceRejected):
    """The bytes are not a DICOM data set we can parse (PS3.4 B.2.3: 0xC000)."""


class IdentityMismatch(InstanceRejected):
    """Missing or invalid identifying UIDs, or a Study UID that differs from the target
    (PS3.18 §10.5.3.1: 0xA900 data set does not match SOP Class)."""


class DuplicateConflict(InstanceRejected):
    """The SOP Instance UID is already stored with different content (0x0111).

    An archive must not silently replace a stored instance: the first copy wins and the
    sender is told, so nothing is lost without a human deciding it.
    """


class Unavailable(ArchiveError):
    """The resource exists but cannot be produced as asked (says why)."""


class BackendFailure(ArchiveError):
    """A backend (index, blob store, cache) failed for reasons outside the request."""


class BackendUnavailable(BackendFailure):
    """A backend did not answer within the time it is allowed (a frozen or partitioned
    server), or it did not answer the last few calls and is left alone for a while (see
    :mod:`storage.breaker`). Not the request's fault and not permanent: ``retry_after`` is
    how many whole seconds a client should wait before trying again (HTTP Retry-After)."""

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class OutOfResources(BackendFailure):
    """A backend is full or over a configured limit (PS3.4: 0xA700)."""


class ReadOnly(BackendFailure):
    """The deployment refuses every write for a moment: it is being switched over to other
    stores (``radcase-pacs migrate --switch``), and what it took now would not reach them.
    Nothing is wrong with the request; ``retry_after`` says in how many seconds to send it
    again (to the same address, which by then serves the new stores)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
