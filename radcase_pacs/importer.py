"""``radcase-pacs import``: load existing files through the same ingest as STOW-RS.

This is how an administrator brings an archive of files (a DICOMDIR tree, a folder dump of
an old PACS) into the server. Every file is tried; the summary says what was stored, what
was already there, what was not DICOM, and why each failure failed.
"""

from __future__ import annotations

import getpass
import os
import socket
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pydicom
from pydicom.errors import InvalidDicomError
from tqdm import tqdm

from radcase_pacs.audit.store import Action, AuditEntry, AuditLog, Channel
from storage.archive import Archive
from storage.errors import ArchiveError, InstanceRejected
from storage.records import AddOutcome
from storage.statuses import dimse_status

MEDIA_STORAGE_DIRECTORY = b"1.2.840.10008.1.3.10"


@dataclass
class ImportSummary:
    stored: int = 0
    already_present: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def report(self, out: TextIO) -> None:
        out.write(
            f"stored: {self.stored}, already present: {self.already_present}, "
            f"failed: {len(self.failed)}, skipped (not DICOM instances): {len(self.skipped)}\n"
        )
        for path, reason in self.failed:
            out.write(f"  failed  {path}: {reason}\n")


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every regular file under the given files and folders, in a stable order."""
    for path in paths:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in sorted(filenames):
                    yield Path(dirpath, name)
        elif path.is_file():
            yield path


def _not_an_instance(path: Path) -> str | None:
    """Why a file is plainly not a DICOM instance (no 'DICM' and no plausible data set, or a
    DICOMDIR), else None: such files are skipped, not counted as failures."""
    with path.open("rb") as handle:
        head = handle.read(132 + 256)
    if len(head) < 8:
        return "too short to be DICOM"
    if head[128:132] == b"DICM":
        return (
            "a DICOMDIR (media directory), not an instance"
            if (MEDIA_STORAGE_DIRECTORY in head)
            else None
        )
    group = int.from_bytes(head[0:2], "little")
    if group in (0x0002, 0x0008) or int.from_bytes(head[0:2], "big") in (0x0002, 0x0008):
        return None  # a bare data set (no preamble) starts with group 0002 or 0008
    return "not a DICOM file"


def import_paths(
    archive: Archive, paths: list[Path], *, audit: AuditLog, progress: bool = True
) -> ImportSummary:
    """Ingest every file under ``paths`` into ``archive``, each recorded in ``audit`` first,
    as a C-STORE or a STOW-RS request is: when the log cannot record, the import stops
    (BackendFailure) before anything unrecorded is stored."""
    summary = ImportSummary()
    files = list(iter_files(paths))
    actor = _operator()
    for path in tqdm(files, unit="file", disable=not progress or None, dynamic_ncols=True):
        try:
            reason = _not_an_instance(path)
        except OSError as exc:
            summary.failed.append((path, str(exc)))
            continue
        if reason is not None:
            summary.skipped.append((path, reason))
            continue
        audit.record(
            AuditEntry(
                tenant=archive.tenant,
                actor=actor,
                action=Action.IMPORT_STORE,
                channel=Channel.CLI,
                route="radcase-pacs import",
                study_uid=_study_uid(path),
                detail=str(path),
                source=socket.gethostname(),
            )
        )
        try:
            with path.open("rb") as handle:
                result = archive.ingest(handle)
        except InstanceRejected as exc:
            summary.failed.append((path, f"{exc.reason} (status 0x{dimse_status(exc):04X})"))
            continue
        except (ArchiveError, OSError) as exc:
            summary.failed.append((path, str(exc)))
            continue
        if result.outcome is AddOutcome.ALREADY_PRESENT:
            summary.already_present += 1
        else:
            summary.stored += 1
    return summary


def _operator() -> str:
    """The account running the import (the audit entry's actor)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container), no login record
        return f"uid {os.getuid()}"


def _study_uid(path: Path) -> str | None:
    """The file's Study Instance UID for its audit entry, from its header alone; None when
    the header cannot be read (the ingest then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = pydicom.dcmread(
                path, stop_before_pixels=True, force=True, specific_tags=["StudyInstanceUID"]
            )
        return str(header.StudyInstanceUID) if "StudyInstanceUID" in header else None
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None
