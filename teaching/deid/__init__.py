"""De-identification of clinical instances into teaching copies (PS3.15 Annex E).

Public API:
- `deidentify(dataset, *, secret, options) -> DeidResult`: the copy, its UID map, burned-in
  flags and the date shift;
- `DeidOptions`: the PS3.15 E.3 options, teaching-file defaults;
- `assess_burned_in(dataset)`: whether the pixels need an educator's review;
- `blank_regions(dataset, regions)`: rectangular pixel blanking, written back losslessly.
"""

from teaching.deid.blanking import BlankingResult, Region, blank_regions
from teaching.deid.burned_in import BurnedInAssessment, assess_burned_in
from teaching.deid.deidentify import DeidResult, deidentify, deployment_key
from teaching.deid.options import DeidOptions
from teaching.deid.uids import UidMap, is_well_known, remap_uid

__all__ = [
    "BlankingResult",
    "BurnedInAssessment",
    "DeidOptions",
    "DeidResult",
    "Region",
    "UidMap",
    "assess_burned_in",
    "blank_regions",
    "deidentify",
    "deployment_key",
    "is_well_known",
    "remap_uid",
]
