"""Search results as DICOM JSON attributes, the same for QIDO-RS and C-FIND.

A :class:`storage.records.Match` carries the documents stored at ingest (study first) and the
values the index derives (counts, modalities); both front-ends merge them the same way and
differ only in framing (a JSON array or a stream of C-FIND identifiers).
"""

from __future__ import annotations

import json
from typing import Any

from pydicom.datadict import dictionary_VR

from storage.instance_json import ROOT_MARK
from storage.records import Match


def match_attributes(match: Match) -> dict[str, Any]:
    """The DICOM JSON attributes of a match, keyed by 8-hex-digit tag, study document first,
    then the derived values. Bulk data is never part of a search result, so values held as
    a BulkDataURI are left out (small binary values stay inline, as in the metadata)."""
    merged: dict[str, Any] = {}
    for doc in match.docs:
        # The instance document marks the service root with ROOT_MARK (a control byte that
        # JSON text cannot contain).
        for key, value in json.loads(doc.replace(ROOT_MARK, b"")).items():
            if "BulkDataURI" not in value:
                merged[key] = value
    for tag, value in match.computed.items():
        merged[f"{tag:08X}"] = computed_json(tag, value)
    return merged


def computed_json(tag: int, value: Any) -> dict[str, Any]:
    """A derived value (a count, the modalities of a study...) in the DICOM JSON model."""
    vr = dictionary_vr(tag)
    values = value if isinstance(value, list) else [value]
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def dictionary_vr(tag: int) -> str:
    """The VR the data dictionary gives a tag (the first of several), UN when unknown."""
    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"
