"""The DIMSE front-end (PS3.7, PS3.4 Annexes A, B and C) over the same archive as DICOMweb."""
