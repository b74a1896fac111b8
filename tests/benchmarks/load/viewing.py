"""What a viewer session asks for, shared by the Locust users (``locustfile.py``), the
load test's runner and the capacity measurement (which must not import Locust: it patches
the standard library on import)."""

STUDY_LIST = "/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060"
"""The study list as OHIF v3 asks for it (QIDO-RS, PS3.18 §10.6)."""
FRAME_ACCEPT = (
    'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'
)
"""The Accept header of OHIF's frame requests (PS3.18 §10.4.1.1.4)."""
DICOM_JSON = "application/dicom+json"
BOUNDS_MS = {
    "QIDO studies": 100.0,
    "QIDO series": 100.0,
    "series metadata": 100.0,
    "frame": 200.0,
}
"""The plan's bounds on p95 for the viewer's requests (searches and metadata, frames)."""
