"""The one status table per edge: each :class:`~storage.errors.ArchiveError` has exactly one
HTTP status and exactly one DIMSE status, whichever module answers.

Why here, beside the tree, and not in each edge: two HTTP edges answer these errors (DICOMweb
and the teaching API, which may not import each other), and two edges speak DIMSE statuses
(the SCP's C-STORE, C-FIND, C-MOVE and C-GET, and STOW-RS, whose FailureReason (0008,1197)
takes the same PS3.4 codes, PS3.18 Table 10.5.3-2). Kept in each edge, the tables drifted
apart (a store failure was 0xA700 on C-STORE and 0x0110 in STOW; 409 or 400 for a bad query);
kept here, "one status per error" is a property of the tree that one test checks. Only the
numbers live in ``storage``: building responses stays at the edges.

DIMSE: one code per error, valid for every service it can reach (PS3.4 B.2.3 Table B.2-1 for
C-STORE, C.4.1.1.4 for C-FIND, C.4.2.1.5 for C-MOVE, C.4.3.1.4 for C-GET; PS3.7 Annex C for
the general ones):

========================= ====== =====================================================
error                     DIMSE  why
========================= ====== =====================================================
ArchiveError (any other)  0x0110 Processing failure (PS3.7 Annex C): ours, not the peer's
NotFound                  0x0110 over DIMSE only a retrieve meets it, for an instance
                                 deleted between its query and its read
InvalidQuery              0xA900 Identifier does not match SOP Class (C.4.1.1.4)
InstanceRejected          0x0110 Processing failure, unless a subclass says more
UnreadableDataset         0xC000 Error: Cannot understand (B.2.3)
IdentityMismatch          0xA900 Error: Data Set does not match SOP Class (B.2.3)
DuplicateConflict         0x0111 Duplicate SOP Instance (PS3.7 Annex C)
Unavailable               0x0110 Processing failure
BackendFailure            0x0110 Processing failure: a store failed, the data was fine;
                                 not 0xC000, which tells the peer its data set is unreadable
BackendUnavailable        0x0110 Processing failure, as for any store failure: the peer
                                 sends again later, as it would after any failure
OutOfResources            0xA700 Refused: Out of Resources (B.2.3 A7xx, C.4.1.1.4 A700;
                                 C-MOVE and C-GET refine the range as A701/A702, for
                                 counting matches and sub-operations, which we do not tell
                                 apart)
ReadOnly                  0xA700 Refused: Out of Resources: the SCP cannot take the
                                 instance now and the peer may send it again later
                                 (B.2.3), while a switch to other stores runs
========================= ====== =====================================================

HTTP: input only ever gives a 4xx; 5xx means a store failed (DESIGN "Errors"). A
BackendUnavailable is 503 Service Unavailable with its ``retry_after`` as the Retry-After
header (RFC 9110 §15.6.4, §10.2.3): the server is fine, a store it needs is not answering.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

from storage.errors import (
    ArchiveError,
    BackendFailure,
    BackendUnavailable,
    DuplicateConflict,
    IdentityMismatch,
    InstanceRejected,
    InvalidQuery,
    NotFound,
    OutOfResources,
    ReadOnly,
    Unavailable,
    UnreadableDataset,
)


class DimseStatus(IntEnum):
    """The DIMSE statuses this server sends (PS3.4 Annexes B and C, PS3.7 Annex C)."""

    SUCCESS = 0x0000
    CANCEL = 0xFE00
    """Matching or sub-operations stopped by a C-CANCEL (PS3.4 C.4.1.2.3, C.4.2.1.4)."""
    PENDING = 0xFF00
    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    OUT_OF_RESOURCES = 0xA700
    DOES_NOT_MATCH_SOP_CLASS = 0xA900
    """Error for a C-STORE data set (B.2.3), Failure for a C-FIND/C-MOVE/C-GET identifier."""
    COERCION_OF_DATA_ELEMENTS = 0xB000
    """Warning: stored with some attribute changed (B.2.3); STOW-RS WarningReason too."""
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007
    """Warning: stored, although the data set does not match its SOP Class (B.2.3)."""
    CANNOT_UNDERSTAND = 0xC000
    """C-STORE "Cannot understand" (B.2.3); the Q/R services' "Unable to process"."""


DIMSE_STATUS_BY_ERROR: dict[type[ArchiveError], DimseStatus] = {
    ArchiveError: DimseStatus.PROCESSING_FAILURE,
    NotFound: DimseStatus.PROCESSING_FAILURE,
    InvalidQuery: DimseStatus.DOES_NOT_MATCH_SOP_CLASS,
    InstanceRejected: DimseStatus.PROCESSING_FAILURE,
    UnreadableDataset: DimseStatus.CANNOT_UNDERSTAND,
    IdentityMismatch: DimseStatus.DOES_NOT_MATCH_SOP_CLASS,
    DuplicateConflict: DimseStatus.DUPLICATE_SOP_INSTANCE,
    Unavailable: DimseStatus.PROCESSING_FAILURE,
    BackendFailure: DimseStatus.PROCESSING_FAILURE,
    BackendUnavailable: DimseStatus.PROCESSING_FAILURE,
    OutOfResources: DimseStatus.OUT_OF_RESOURCES,
    ReadOnly: DimseStatus.OUT_OF_RESOURCES,
}

HTTP_STATUS_BY_ERROR: dict[type[ArchiveError], int] = {
    ArchiveError: 500,
    NotFound: 404,
    InvalidQuery: 400,
    InstanceRejected: 409,
    UnreadableDataset: 409,
    IdentityMismatch: 409,
    DuplicateConflict: 409,
    Unavailable: 409,
    BackendFailure: 503,
    BackendUnavailable: 503,
    OutOfResources: 507,
    ReadOnly: 503,
}

S = TypeVar("S")


def _nearest(table: dict[type[ArchiveError], S], exc: ArchiveError) -> S:
    """The entry of the error's own class or of its nearest ancestor (its MRO), so that a
    backend's private subclass of BackendFailure answers as BackendFailure does."""
    for cls in type(exc).__mro__:
        if issubclass(cls, ArchiveError) and cls in table:
            return table[cls]
    raise AssertionError("ArchiveError itself is in every table")  # pragma: no cover


def dimse_status(exc: ArchiveError) -> DimseStatus:
    """The DIMSE status (C-STORE, C-FIND, C-MOVE, C-GET, STOW-RS FailureReason) of ``exc``."""
    return _nearest(DIMSE_STATUS_BY_ERROR, exc)


def http_status(exc: ArchiveError) -> int:
    """The HTTP status (DICOMweb and the teaching API) of ``exc``."""
    return _nearest(HTTP_STATUS_BY_ERROR, exc)
