"""A side-by-side benchmark of DICOMweb (and DIMSE) servers: ``python -m conformance.bench``.

It generates its own data, stores the same series in every server, then measures what
viewers and modalities feel (ingest, study search, metadata, frames, first image, study
retrieval, memory, errors), alternating servers round by round. See ``__main__`` for usage.
"""
