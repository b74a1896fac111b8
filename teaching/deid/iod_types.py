"""The strictest PS3.3 attribute type of each Table E.1-1 attribute with a combined action code.

PS3.15 E.1.1 resolves the combined codes by the attribute's type in the IOD of the instance,
e.g. "Z/D: Z unless D is required to maintain IOD conformance (Type 2 versus Type 1)". There is
no machine-readable IOD table in this project, so this curated table records, per attribute, the
strictest type it has in any composite IOD that uses it (1C counts as 1, 2C as 2). Resolving by
the strictest type keeps every IOD conformant; the cost is that an instance whose own IOD makes
the attribute Type 3 may keep a dummy (D) or an empty value (Z) where removal was allowed. That
trade-off errs towards valid objects and never towards keeping an original value.

`source` names the PS3.3 module (or PS3.3 Annex A section) where that strictest type occurs.
Where no module could be pinned down, the type is the one the combined code itself implies (the
committee assigned X/D, Z/D, X/Z/D, X/Z/U* because some IOD has the attribute as Type 1, and X/Z
because some IOD has it as Type 2), and `source` says so, with the module of the weaker uses
that are known.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IodType:
    strictest: int
    source: str


_INFERRED = "strictest type implied by the Table E.1-1 combined code"

STRICTEST_TYPE: dict[int, IodType] = {
    # --- Z/D ---
    0x00100020: IodType(1, f"Patient Module C.7.1.1 (Type 2); {_INFERRED}"),  # Patient ID
    0x00700084: IodType(  # Content Creator's Name
        1, f"Content Identification Macro Table 10-12 (Type 2); {_INFERRED}"
    ),
    0x00080023: IodType(  # Content Date
        1, "SR Document General Module C.17.2; Radiotherapy Common Instance Module C.36.4"
    ),
    0x00080033: IodType(  # Content Time
        1, "SR Document General Module C.17.2; Radiotherapy Common Instance Module C.36.4"
    ),
    0x00180010: IodType(1, f"Contrast/Bolus Module C.7.6.4 (Type 2); {_INFERRED}"),
    0x00189919: IodType(1, _INFERRED),  # Instruction Performed DateTime
    # --- X/Z ---
    0x00400555: IodType(2, "Acquisition Context Module C.7.6.14"),
    0x00080022: IodType(2, f"General Image Module C.7.6.1 (Type 3); {_INFERRED}"),
    0x00080032: IodType(2, f"General Image Module C.7.6.1 (Type 3); {_INFERRED}"),
    0x22000005: IodType(2, _INFERRED),  # Barcode Value
    0x22000002: IodType(2, _INFERRED),  # Label Text
    0x00102203: IodType(2, "Patient Module C.7.1.1 (Type 2C)"),  # Patient's Sex Neutered
    0x00081110: IodType(2, f"General Study Module C.7.2.1 (Type 3); {_INFERRED}"),
    0x00321060: IodType(  # Requested Procedure Description
        2, "SR Document General Module C.17.2, Referenced Request Sequence (Type 2)"
    ),
    0x300E0008: IodType(2, "Approval Module C.8.8.16 (Type 2C)"),  # Reviewer Name
    0x30080105: IodType(2, _INFERRED),  # Source Serial Number
    0x300A00B2: IodType(  # Treatment Machine Name
        2, "RT Treatment Machine Record Module C.8.8.18; RT Beams Module C.8.8.14"
    ),
    # --- X/D ---
    0x00181400: IodType(1, f"DX Image Module C.8.11.3 (Type 3); {_INFERRED}"),
    0x0018700C: IodType(1, f"DX Detector Module C.8.11.4 (Type 3); {_INFERRED}"),
    0x0018700A: IodType(1, f"DX Detector Module C.8.11.4 (Type 3); {_INFERRED}"),
    0x00189517: IodType(1, _INFERRED),  # End Acquisition DateTime
    0x30080054: IodType(1, _INFERRED),  # First Treatment Date
    0x00080012: IodType(1, "Radiotherapy Common Instance Module C.36.4"),  # Instance Creation Date
    0x3010004D: IodType(1, _INFERRED),  # Intended Phase End Date
    0x3010004C: IodType(1, _INFERRED),  # Intended Phase Start Date
    0x30080056: IodType(1, _INFERRED),  # Most Recent Treatment Date
    0x0040A032: IodType(  # Observation DateTime
        1, "Procedure Log IOD A.35.7.3.1.2 (first-level log content items)"
    ),
    0x00081072: IodType(1, f"RT Series Module C.8.8.1 (Type 3); {_INFERRED}"),
    0x00181030: IodType(1, f"General Series Module C.7.3.1 (Type 3); {_INFERRED}"),
    0x300A0006: IodType(1, f"RT General Plan Module C.8.8.9 (Type 2); {_INFERRED}"),
    0x300A0007: IodType(1, f"RT General Plan Module C.8.8.9 (Type 2); {_INFERRED}"),
    0x30100056: IodType(  # RT Treatment Approach Label: Type 2, and X/D offers no Z
        2, "RT Physician Intent Module C.36.5"
    ),
    0x00080021: IodType(1, "Enhanced RT Series Module C.36.3"),  # Series Date
    0x00080031: IodType(1, "Enhanced RT Series Module C.36.3"),  # Series Time
    0x00189516: IodType(1, _INFERRED),  # Start Acquisition DateTime
    0x0018700E: IodType(1, f"DX Detector Module C.8.11.4 (Type 3); {_INFERRED}"),
    0x30080250: IodType(1, _INFERRED),  # Treatment Date
    0x30080251: IodType(1, _INFERRED),  # Treatment Time
    0x30100077: IodType(1, "RT Physician Intent Module C.36.5"),  # Treatment Site
    # --- X/Z/D ---
    0x0008002A: IodType(  # Acquisition DateTime
        1, "Enhanced MR Image Module C.8.13.1 (Type 1C); Ophthalmic Photography Image C.8.17.2"
    ),
    0x00181000: IodType(  # Device Serial Number
        1, "Enhanced General Equipment Module C.7.5.2; RT Treatment Machine Record C.8.8.18"
    ),
    0x00080013: IodType(1, "Radiotherapy Common Instance Module C.36.4"),  # Instance Creation Time
    0x00080082: IodType(1, f"General Equipment Module C.7.5.1 (Type 3); {_INFERRED}"),
    0x00080080: IodType(  # Institution Name
        1, f"RT Treatment Machine Record Module C.8.8.18 (Type 2); {_INFERRED}"
    ),
    0x00081070: IodType(1, f"RT Series Module C.8.8.1 (Type 2); {_INFERRED}"),  # Operators' Name
    0x00081111: IodType(  # Referenced Performed Procedure Step Sequence
        1, "Enhanced Series Module C.7.3.3 (1C); Enhanced RT Series Module C.36.3 (1C)"
    ),
    0x00081010: IodType(1, f"General Equipment Module C.7.5.1 (Type 3); {_INFERRED}"),
    # --- X/Z/U* ---
    0x00081140: IodType(  # Referenced Image Sequence
        1, "Presentation State Relationship Module C.11.11 (in Referenced Series Sequence)"
    ),
    0x00082112: IodType(  # Source Image Sequence
        1, "Derivation Image Functional Group Macro C.7.6.16.2.6 (in Derivation Image Sequence)"
    ),
}


def strictest_type(tag: int) -> int:
    """The strictest type of `tag`; unknown tags count as Type 1 so the resolution keeps a value.

    Every combined-code row of the shipped table has an entry (a test checks it); the fallback
    only matters for a future edition of the table, and Type 1 errs towards a valid object.
    """
    entry = STRICTEST_TYPE.get(tag)
    return entry.strictest if entry is not None else 1
