"""How long ``radcase-pacs migrate`` takes to move a department from the embedded default to
PostgreSQL + Redis + S3, and how long its switch keeps the old server read-only.

    python -m tests.benchmarks.migrate [--instances 10000] [--reviews 100000] [--audit 100000]

Builds the embedded deployment in a temporary folder: small instances (8x8 CT images, a
hundred to a study) through ``Archive.ingest_many``, users through the user store, and a
long history written straight into the tables (quiz sessions of 20 answers, the review log,
every learner's cards, the audit log; see ``tests/radcase_pacs/migration/history.py``). The
target is a fresh schema of the test PostgreSQL, a Redis prefix and a bucket on moto's S3
server on loopback. Then, each through the real command in a process of its own:

1. ``migrate`` once: the whole copy and its verification (every table compared, every blob
   read back from S3);
2. the old server started on the source, and ``migrate --follow`` for two passes (the second
   finds nothing new: the cost of a pass over an unchanged department);
3. ``migrate --switch`` while a client stores a study every 50 ms: the read-only moment as the
   switch measures it, and as the client saw it (from its first refused store to the end of
   the switch).

Everything made is removed at the end.
"""

from __future__ import annotations

import argparse
import io
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

from radcase_pacs.auth.principal import Role
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import file_settings
from tests.backends import MOTO, postgres_schema, redis_prefix, s3_bucket
from tests.factories import make_instance, multipart_body, to_bytes
from tests.radcase_pacs.migration.history import add_answers, add_audit_entries
from tests.radcase_pacs.migration.sides import (
    ADMIN_PASSWORD,
    environment,
    migrate,
    production_config,
    write_config,
)
from tests.serving import serve
from tests.web.department import token

PER_STUDY = 100
BATCH = 50


def build(config: Path, instances: int, reviews: int, audit: int, learners: int) -> None:
    started = time.monotonic()
    with open_deployment(file_settings(config)) as department:
        for n in range(learners):
            department.auth.users.add_user(f"learner{n:03d}", "default", Role.LEARNER, "password!")
        study = series = ""
        batch: list[bytes] = []
        for n in range(instances):
            if n % PER_STUDY == 0:
                study, series = generate_uid(), generate_uid()
            ds = make_instance(study_uid=study, series_uid=series, instance_number=n % PER_STUDY)
            batch.append(to_bytes(ds))
            if len(batch) == BATCH or n == instances - 1:
                department.archive.ingest_many(io.BytesIO(b) for b in batch)
                batch = []
        questions = [(f"{q:024x}", f"{q // 4:024x}") for q in range(1, 201)]
        add_answers(
            department.databases["teaching"], reviews, learners=learners, questions=questions
        )
        add_audit_entries(department.databases["audit"], audit)
    print(f"built the department in {time.monotonic() - started:.0f} s")


def timed(process: subprocess.Popen[str]) -> tuple[float, str]:
    started = time.monotonic()
    output = process.communicate()[0]
    if process.returncode != 0:
        raise SystemExit(f"migrate failed ({process.returncode}):\n{output}")
    return time.monotonic() - started, output


def storing(base: str, stop: threading.Event, refused: list[float]) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        admin = token(http, "admin", ADMIN_PASSWORD)
        while not stop.is_set():
            body, content_type = multipart_body([to_bytes(make_instance())])
            answer = http.post(
                "/dicomweb/studies",
                content=body,
                headers={**admin, "Content-Type": content_type},
            )
            if answer.status_code == 503:
                refused.append(time.monotonic())
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--reviews", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=100_000)
    parser.add_argument("--learners", type=int, default=100)
    args = parser.parse_args()
    MOTO.start()
    with (
        tempfile.TemporaryDirectory() as folder,
        postgres_schema() as url,
        redis_prefix() as prefix,
        s3_bucket() as bucket,
    ):
        here = Path(folder)
        source = write_config(
            here / "source.toml",
            data_dir=here / "embedded",
            cache_url=f"sqlite:///{here / 'embedded' / 'cache.sqlite3'}",
            read_only_check_seconds=1.0,
        )
        target = production_config(here, url, prefix, bucket)
        build(source, args.instances, args.reviews, args.audit, args.learners)

        seconds, output = timed(migrate(source, target))
        print(f"migrate (copy and verify everything): {seconds:.1f} s")
        print("\n".join(line for line in output.splitlines() if not line.startswith("table ")))

        with serve(environment(source), log=here / "old.log") as old:
            follower = migrate(source, target, "--follow", "--interval", "0")
            passes: list[str] = []
            assert follower.stdout is not None
            while len(passes) < 2:
                line = follower.stdout.readline()
                if not line:
                    raise SystemExit("migrate --follow ended early")
                if line.startswith("pass "):
                    passes.append(line.strip())
            follower.send_signal(signal.SIGINT)
            follower.communicate(timeout=600)
            print("follow:", *passes, sep="\n  ")

            stop, refused = threading.Event(), []
            client = threading.Thread(target=storing, args=(old, stop, refused), daemon=True)
            client.start()
            time.sleep(1)
            seconds, output = timed(migrate(source, target, "--switch", "--retry-after", "2"))
            ended = time.monotonic()
            stop.set()
            client.join(timeout=30)
            print(f"migrate --switch: {seconds:.1f} s in all")
            print("\n".join(line for line in output.splitlines() if not line.startswith("table ")))
            if refused:
                print(f"the client's stores were refused for {ended - refused[0]:.1f} s")


if __name__ == "__main__":
    main()
