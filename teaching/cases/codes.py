"""The coded vocabularies a teaching case is tagged with.

IHE Radiology Technical Framework, Teaching File and Clinical Trial Export (TCE), coding scheme
``IHERADTF``: the category codes TCE301-TCE311 and the level codes TCE201-TCE203 are what
teaching-file systems exchange, so cases exported elsewhere keep their meaning. The KOS
document titles that ask for a teaching-file export are here too.
"""

from __future__ import annotations

from typing import Final

TCE_SCHEME: Final = "IHERADTF"

CATEGORIES: Final[dict[str, str]] = {
    "TCE301": "Musculoskeletal",
    "TCE302": "Pulmonary",
    "TCE303": "Cardiovascular",
    "TCE304": "Gastrointestinal",
    "TCE305": "Genitourinary",
    "TCE306": "Neuro",
    "TCE307": "Vascular and Interventional",
    "TCE308": "Nuclear",
    "TCE309": "Ultrasound",
    "TCE310": "Pediatric",
    "TCE311": "Breast",
}

LEVELS: Final[dict[str, str]] = {
    "TCE201": "Primary",
    "TCE202": "Intermediate",
    "TCE203": "Advanced",
}

KEY_OBJECT_SELECTION_CLASS: Final = "1.2.840.10008.5.1.4.1.1.88.59"

# (code value, coding scheme designator) of the Key Object Selection document titles that mean
# "make a teaching case of these": IHE TCE's own title, the DICOM code the integrations we serve
# send, and PS3.16 CID 7010 "For Teaching".
TEACHING_EXPORT_TITLES: Final[dict[tuple[str, str], str]] = {
    ("TCE001", TCE_SCHEME): "For Teaching File Export",
    ("128710", "DCM"): "For Teaching File Export",
    ("113004", "DCM"): "For Teaching",
}

# PS3.16 CID 7010 / TID 2000: the Key Object Description text item.
KEY_OBJECT_DESCRIPTION: Final = ("113012", "DCM")
# PS3.16 TID 1003 Person Observer Identifying Attributes: who flagged the images.
PERSON_OBSERVER_NAME: Final = ("121008", "DCM")
