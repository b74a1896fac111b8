"""Copying clinical instances into the teaching collection, de-identified on the way.

The clinical archive is only ever read here, never written; the teaching archive only ever
receives de-identified copies. An instance flagged for burned-in text is not put into the
teaching collection at all: its copy is held back under a pending key in the teaching blob
store until an educator confirms the pixels are clean or blanks them (PS3.15 E.3.1 Clean Pixel
Data is a human decision for such images), so a learner can never see it before that.

Only the instance's own faults are :class:`ExportFailed` (the author's input, answered 422 by
the API): stored bytes that pydicom cannot read, a copy the teaching collection refuses. An
exception out of de-identification or encoding is a fault in our code, not in the study: it
propagates, is logged with its traceback, and answers 500.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from storage.archive import Archive
from storage.errors import InstanceRejected
from storage.records import StoredInstance
from teaching.cases.models import PixelReview
from teaching.cases.store import TeachingInstance
from teaching.deid import DeidOptions, deidentify, deployment_key, remap_uid

log = logging.getLogger(__name__)

# What pydicom raises on bytes that are not a data set it can read: no preamble and no
# elements (InvalidDicomError), an element or item cut short (EOFError, OSError "No tag to
# read", struct.error), a length or value it cannot take (ValueError).
UNREADABLE = (InvalidDicomError, EOFError, OSError, struct.error, ValueError)


class ExportFailed(Exception):
    """A clinical instance could not be turned into a teaching copy because of its content
    (names the instance)."""


@dataclass
class Export:
    """What one export produced: the copies, the UID pairs to remember, and the teaching
    study UID (the study's UIDs map the same way whichever instances were chosen)."""

    teaching_study_uid: str
    instances: list[TeachingInstance] = field(default_factory=list)
    uid_pairs: set[tuple[str, str]] = field(default_factory=set)
    sop_uids: dict[str, str] = field(default_factory=dict)
    """Clinical SOP Instance UID -> teaching SOP Instance UID of every exported instance."""


def encode(dataset: Dataset) -> bytes:
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def read_dataset(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


@dataclass(frozen=True)
class Exporter:
    clinical: Archive
    teaching: Archive
    secret: str
    options: DeidOptions = field(default_factory=DeidOptions)

    def teaching_uid(self, clinical_uid: str) -> str:
        """The teaching UID a clinical UID maps to (the same keyed hash the copies use)."""
        return remap_uid(deployment_key(self.secret), clinical_uid)

    def export(
        self,
        instances: Iterable[StoredInstance],
        known: Callable[[str], TeachingInstance | None],
    ) -> Export:
        """De-identify and store each instance; ``known`` returns what an earlier export
        already made of a teaching SOP Instance UID (then nothing is done again)."""
        chosen = list(instances)
        study_uid = chosen[0].study_uid if chosen else ""
        result = Export(teaching_study_uid=self.teaching_uid(study_uid))
        result.uid_pairs.add((study_uid, result.teaching_study_uid))
        for stored in chosen:
            teaching_sop = self.teaching_uid(stored.sop_uid)
            previous = known(teaching_sop)
            if previous is not None:
                result.instances.append(previous)
                result.uid_pairs |= {
                    (stored.sop_uid, teaching_sop),
                    (stored.series_uid, previous.series_uid),
                }
            else:
                made, pairs = self._copy(stored)
                result.instances.append(made)
                result.uid_pairs |= pairs
            result.sop_uids[stored.sop_uid] = teaching_sop
        return result

    def _source(self, stored: StoredInstance) -> Dataset:
        """The clinical instance as stored; the archive's errors propagate with their own
        status, bytes pydicom cannot read are the instance's fault (ExportFailed)."""
        data = self.clinical.read(stored)
        try:
            return read_dataset(data)
        except UNREADABLE as exc:
            raise ExportFailed(f"instance {stored.sop_uid} could not be read: {exc}") from exc

    def _copy(self, stored: StoredInstance) -> tuple[TeachingInstance, set[tuple[str, str]]]:
        deid = deidentify(self._source(stored), secret=self.secret, options=self.options)
        data = encode(deid.dataset)
        copy = deid.dataset
        flagged = deid.burned_in.flagged
        teaching_sop = str(copy.SOPInstanceUID)
        key = None
        if flagged:
            key = self.teaching.hold(teaching_sop, data)
        else:
            self.store(data)
        made = TeachingInstance(
            sop_uid=teaching_sop,
            study_uid=str(copy.StudyInstanceUID),
            series_uid=str(copy.SeriesInstanceUID),
            sop_class_uid=str(copy.SOPClassUID),
            burned_in=flagged,
            reasons=deid.burned_in.reasons,
            review=PixelReview.PENDING if flagged else PixelReview.NOT_NEEDED,
            pending_key=key,
        )
        return made, set(deid.uid_map.items())

    def store(self, data: bytes) -> None:
        """Put a reviewed or unflagged copy into the teaching collection."""
        try:
            self.teaching.ingest(io.BytesIO(data))
        except InstanceRejected as exc:
            raise ExportFailed(f"the teaching copy was refused: {exc.reason}") from exc
