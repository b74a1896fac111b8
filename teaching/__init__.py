"""The teaching layer: de-identified copies of clinical studies for teaching files.

DESIGN.md: `teaching` may import `storage` only, never `dicomweb` or `radcase_pacs`.
The de-identification engine lives in `teaching.deid` (PS3.15 Annex E).
"""
