"""A black-box DICOMweb (and DIMSE) conformance suite, runnable against any server.

``python -m conformance --dicomweb URL [--dimse HOST:PORT:AET] [--json OUT]`` uploads a corpus
of its own (fresh UIDs on every run, so runs against a shared server never collide), then runs
named checks grouped by service, each citing the section of PS3.18 (or PS3.4) it holds the
server to. It talks to the server only over the wire, so it says the same thing about ours as
about anyone else's.
"""
