"""How QIDO-RS study paging behaves deep into a large result set on PostgreSQL.

    python -m tests.benchmarks.qido_deep_paging [--studies 200000]

Fills a fresh schema of the test PostgreSQL with N synthetic studies (copies of one real
study row, with distinct UIDs, names and dates), then times a page of 100 at growing offsets
two ways: jumping straight to the offset (the database skips ``offset`` rows) and arriving
there page by page as a client does (the archive resumes from its cursor). Prints medians
of 5 runs; the schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from storage.archive import Archive
from storage.attributes import BY_KEYWORD, Level
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.memory import MemoryCache
from storage.query import Query, condition
from storage.stores import Stores
from storage.urls import open_index
from tests.backends import postgres_schema
from tests.factories import make_instance, to_bytes

PAGE = 100
COPIED = (
    "tenant, patient_id, issuer_of_patient_id, patient_name_ci, patient_name_fuzzy, "
    "patient_birth_date, patient_sex, study_date, study_time, accession_number, "
    "referring_physician_name_ci, referring_physician_name_fuzzy, study_id, "
    "study_description, modalities, sop_classes, n_series, n_instances, version, doc"
)


def fill(url: str, studies: int) -> None:
    base, _, schema = url.partition("?schema=")
    selected = COPIED.replace("patient_name_ci", "patient_name_ci || g").replace(
        "study_date", "to_char(date '2000-01-01' + (g %% 9000), 'YYYYMMDD')"
    )
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'SET search_path TO "{schema}"')
        connection.execute(
            f"INSERT INTO studies (study_uid, {COPIED}) SELECT '1.2.3.' || g, {selected} "
            f"FROM studies, generate_series(1, %s) g",
            (studies,),
        )
        connection.execute("ANALYZE")


def timed(archive: Archive, query: Query) -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        archive.query(query, limit=PAGE + 1)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=200_000)
    args = parser.parse_args()
    with postgres_schema() as url, tempfile.TemporaryDirectory() as folder:
        cache = MemoryCache()
        stores = Stores(index=open_index(url), blobs=FilesystemBlobStore(Path(folder)), cache=cache)
        archive = Archive(stores)
        archive.open()
        archive.ingest(io.BytesIO(to_bytes(make_instance(patient_name="SMITH^JOHN"))))
        fill(url, args.studies)
        searches = {
            "all studies": (),
            "PatientName=SMITH*": (condition(BY_KEYWORD["PatientName"], "SMITH*"),),
        }
        print(f"{args.studies} studies, pages of {PAGE}, median of 5 (ms)")
        print(f"{'search':<22}{'offset':>8}{'jump':>10}{'paging':>10}")
        for label, conditions in searches.items():
            for offset in (0, 1_000, 10_000, 100_000, args.studies - 10_000):
                query = Query(level=Level.STUDY, conditions=conditions, offset=offset)
                cache.delete(archive._cursor_key(query, offset))
                jump = timed(archive, query)
                if offset:  # the page before leaves the cursor a client's next request finds
                    archive.query(
                        Query(level=Level.STUDY, conditions=conditions, offset=offset - PAGE),
                        limit=PAGE + 1,
                    )
                paging = timed(archive, query)
                print(f"{label:<22}{offset:>8}{jump:>10.1f}{paging:>10.1f}")
        archive.close()


if __name__ == "__main__":
    main()
