"""An instance's DICOM JSON (PS3.18 Annex F), computed once at ingest.

Bulk data is never inlined in metadata (PS3.18 §10.4.1.1.2 / §F.2.6): binary values above a
small threshold become a BulkDataURI, and their bytes are gathered (little endian) into a
*bulk sidecar* so that the bulk data resource is later one ranged read, like a frame.

The public origin of the server is not known at ingest (it depends on each request's
``Forwarded`` headers), so every URI is stored with the byte ``0x01`` standing for the
service root. ``json.dumps`` escapes every control character, so a raw 0x01 can only come
from us, and the reader swaps it for the root with one ``bytes.replace``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from storage.frames import swap_bytes

ROOT_MARK = b"\x01"
BULK_THRESHOLD = 1024
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# Word width of binary VRs whose bytes Big Endian reverses (PS3.5 §7.3).
SWAP_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


@dataclass(frozen=True, slots=True)
class BulkEntry:
    """Where one bulk value sits in the sidecar."""

    path: str
    vr: str
    offset: int
    length: int


@dataclass
class _Collector:
    """Accumulates bulk values while the JSON is built."""

    token: str
    instance_path: str
    little_endian: bool
    chunks: list[bytes] = field(default_factory=list)
    entries: list[BulkEntry] = field(default_factory=list)
    size: int = 0

    def add(self, path: str, vr: str, value: bytes) -> str:
        if not self.little_endian and vr in SWAP_WIDTH:
            value = swap_bytes(value, SWAP_WIDTH[vr])
        self.entries.append(BulkEntry(path, vr, self.size, len(value)))
        self.chunks.append(value)
        self.size += len(value)
        return f"{self.token}{self.instance_path}/bulk/{path}"


@dataclass(frozen=True)
class InstanceJson:
    """The JSON body (with ROOT_MARK for the service root), its top-level object for deriving
    study and series documents, and the bulk sidecar."""

    body: bytes
    top_level: dict[str, Any]
    sidecar: bytes
    bulk: tuple[BulkEntry, ...]


def instance_path(study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"


def build(
    dataset: Dataset,
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    little_endian: bool,
    pixel_vr: str | None,
    pixel_tag: int = 0x7FE00010,
    known: Mapping[int, dict[str, Any]] | None = None,
) -> InstanceJson:
    """Build the instance's DICOM JSON; ``pixel_vr`` set means the (separately located)
    top-level pixel data gets a BulkDataURI served from the frame table. ``known`` holds
    the JSON of top-level elements already computed, by tag (those are not converted)."""
    token = f"@{secrets.token_hex(16)}@"
    path = instance_path(study_uid, series_uid, sop_uid)
    collector = _Collector(token, path, little_endian)
    top = _dataset_json(dataset, collector, "", known or {})
    if pixel_vr is not None:
        key = f"{pixel_tag:08X}"
        top[key] = {"vr": pixel_vr, "BulkDataURI": f"{token}{path}/bulk/{key}"}
        top = dict(sorted(top.items()))
    body = dumps(top).replace(token.encode(), ROOT_MARK)
    return InstanceJson(body, top, b"".join(collector.chunks), tuple(collector.entries))


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _dataset_json(
    dataset: Dataset,
    collector: _Collector,
    prefix: str,
    known: Mapping[int, dict[str, Any]] = MappingProxyType({}),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in _tags(dataset):
        key = f"{tag:08X}"
        value_json = known.get(tag)
        if value_json is None:
            value_json = _element_json(dataset[tag], collector, f"{prefix}{key}")
        out[key] = value_json
    return out


def _tags(dataset: Dataset) -> Iterator[int]:
    """Tags in order, without group lengths (retired, PS3.5 §7.2) and without the file meta
    group, which is not part of the data set (PS3.10 §7.1)."""
    for tag in sorted(dataset.keys()):
        if tag & 0xFFFF == 0 or tag >> 16 == 0x0002:
            continue
        yield tag


def _element_json(element: DataElement, collector: _Collector, path: str) -> dict[str, Any]:
    vr = element.VR or "UN"
    if vr == "SQ":
        items = [
            _dataset_json(item, collector, f"{path}/{index}/")
            for index, item in enumerate(element.value or [])
        ]
        return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
    if vr in BINARY_VRS:
        value = element.value
        if isinstance(value, bytes | bytearray) and len(value) > BULK_THRESHOLD:
            return {"vr": vr, "BulkDataURI": collector.add(path, vr, bytes(value))}
    try:
        result: dict[str, Any] = element.to_json_dict(None, BULK_THRESHOLD)
    except (ValueError, TypeError, OverflowError):
        result = _lenient_json(element, vr)
    return result


def _lenient_json(element: DataElement, vr: str) -> dict[str, Any]:
    """A value pydicom cannot convert (e.g. IS '1A'): keep its text rather than lose it.

    PS3.18 §F.2.3 wants numbers for IS/DS; a malformed number has no numeric form, and an
    archive must not silently drop what it was sent.
    """
    raw = element.value
    values = list(raw) if isinstance(raw, list | tuple) else [raw]
    texts = [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
    texts = [t for t in texts if t != ""]
    return {"vr": vr, "Value": texts} if texts else {"vr": vr}
