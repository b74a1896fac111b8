"""``python -m conformance --dicomweb URL [--dimse HOST:PORT:AET] [--json OUT]``.

Exit status 0 only when no check failed (skipped checks do not fail a run); 2 for bad usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance.context import Context, DimseTarget
from conformance.corpus import build_corpus
from conformance.runner import line, run_all, summary, write_json


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    p.add_argument("--dicomweb", required=True, help="DICOMweb root URL, e.g. http://host/dicomweb")
    p.add_argument("--dimse", help="HOST:PORT:AET of the server's DIMSE listener")
    p.add_argument("--wado-uri", help="WADO-URI endpoint (default: <dicomweb>/wado)")
    p.add_argument("--origin", default="https://viewer.example", help="Origin the CORS checks send")
    p.add_argument("--json", type=Path, help="write the results as JSON to this file")
    p.add_argument("--timeout", type=float, default=60, help="seconds per HTTP request")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        dimse = DimseTarget.parse(args.dimse) if args.dimse else None
    except ValueError:
        print(f"--dimse {args.dimse!r} is not HOST:PORT:AET", file=sys.stderr)
        return 2
    # dicomweb-client logs each paging Warning header; the checks judge those themselves.
    logging.getLogger("dicomweb_client").setLevel(logging.ERROR)
    corpus = build_corpus()
    context = Context.create(
        args.dicomweb,
        corpus,
        wado_uri=args.wado_uri,
        origin=args.origin,
        dimse=dimse,
        timeout=args.timeout,
    )
    print(f"corpus: {len(corpus.instances)} instances, Patient IDs {corpus.patient_id_prefix}-*")
    try:
        results = run_all(context, report=lambda r: print(line(r), flush=True))
    finally:
        context.close()
    print(summary(results))
    if args.json:
        write_json(args.json, results)
    return 1 if any(r.status == "FAIL" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
