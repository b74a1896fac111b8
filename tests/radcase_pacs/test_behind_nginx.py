"""Several hosts behind a real load balancer: nginx (deploy/nginx/radcase.conf.template, as
shipped) in front of two ``serve`` instances, each in a network namespace of its own with its
own address (tests/hosts.py), sharing PostgreSQL, Redis and S3.

Under a steady load of viewers (QIDO-RS, series search, metadata, frames) and STOW-RS
writers, all through nginx:

- one instance is killed (SIGKILL): only the requests in flight at that moment may fail;
  nginx retries the GETs on the other instance (none fails), and a STOW-RS client whose
  upload the dead instance was receiving is told 502, never left without an answer;
- a rolling restart (SIGTERM one instance, wait for it to exit, start it again, wait until
  nginx uses it again, then the next) fails no request at all.

The counts are printed (``pytest -s``) for the README.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from pydicom.uid import generate_uid

from radcase_pacs.drain import EXIT_MARGIN
from tests.backends import MOTO, REDIS_URL, unavailable
from tests.factories import free_port, make_instance, multipart_body, to_bytes
from tests.hosts import Host, Relays, hosts
from tests.serving import ROOT

TEMPLATE = ROOT / "deploy" / "nginx" / "radcase.conf.template"
PORT = 8080
PASSWORD = "rolling restart"
DRAIN = 2.5  # above the template's upstream keepalive_timeout (2 s)
GRACE = 10.0
READERS = 6
WRITERS = 2
# The study list and the frames as OHIF asks for them.
STUDY_LIST: dict[str, str | int] = {"limit": 101, "offset": 0, "includefield": "00081030,00080060"}
FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


# -- nginx ---------------------------------------------------------------------------------


def render(template: str, values: dict[str, str]) -> str:
    """The template with its ${RADCASE_...} names filled in (nginx's own $variables kept)."""
    return re.sub(r"\$\{(RADCASE_[A-Z0-9_]+)\}", lambda m: values[m.group(1)], template)


class Nginx:
    """nginx in the foreground with the shipped site and a main file of the test's own."""

    def __init__(self, folder: Path, listen: int, instances: list[str]) -> None:
        self.folder = folder
        self.port = listen
        self.access_log = folder / "access.log"
        site = render(
            TEMPLATE.read_text(),
            {
                "RADCASE_LISTEN": f"127.0.0.1:{listen}",
                "RADCASE_INSTANCE_1": instances[0],
                "RADCASE_INSTANCE_2": instances[1],
                "RADCASE_ACCESS_LOG": str(self.access_log),
            },
        )
        (folder / "radcase.conf").write_text(site)
        temp = "\n".join(
            f"    {kind}_temp_path {folder / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} notice;\n"
            + ("user root;\n" if os.geteuid() == 0 else "")
            + "events { worker_connections 1024; }\n"
            f"http {{\n{temp}\n    include {folder / 'radcase.conf'};\n}}\n"
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            unavailable("nginx is not installed (Debian package nginx)")
        self.process = subprocess.Popen(
            [binary, "-p", str(folder), "-c", str(folder / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=(folder / "stderr.log").open("wb"),
        )
        self.base = f"http://127.0.0.1:{listen}"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{self.base}/healthz", timeout=2)
                return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, (folder / "stderr.log").read_text()
            assert time.monotonic() < deadline, "nginx did not come up"
            time.sleep(0.1)

    def log_mark(self) -> int:
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def log_lines(self, start: int, end: int | None = None) -> list[str]:
        with self.access_log.open("rb") as handle:
            handle.seek(start)
            data = handle.read() if end is None else handle.read(end - start)
        return data.decode(errors="replace").splitlines()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- the instances -------------------------------------------------------------------------


def relayed(url: str, relays: Relays, host: Host) -> str:
    """``url`` (a loopback service) as ``host`` reaches it: through a relay on its gateway."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    port = relays.add(host.gateway, (parts.hostname, parts.port))
    netloc = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{netloc}{host.gateway}:{port}"))


@dataclass
class Instance:
    """``radcase-pacs serve`` on a host of its own."""

    host: Host
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host.address}:{PORT}"

    @property
    def base(self) -> str:
        return f"http://{self.address}"

    def start(self) -> None:
        serve = [sys.executable, "-m", "radcase_pacs", "serve"]
        listen = ["--host", self.host.address, "--port", str(PORT), "--workers", "1"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.host.command(*serve, *listen),
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process is not None and self.process.poll() is None, self.tail()
            assert time.monotonic() < deadline, "the instance did not come up"
            time.sleep(0.1)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def end(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def draining(instance: Instance) -> bool:
    """Whether the instance's own /healthz answers 503 draining before its listener closes
    (it may take a moment to act on the signal)."""
    deadline = time.monotonic() + DRAIN
    while time.monotonic() < deadline:
        answer = httpx.get(f"{instance.base}/healthz", timeout=5)
        if answer.status_code == 503:
            return bool(answer.json() == {"status": "draining"})
        time.sleep(0.05)
    return False


def wait_in_rotation(nginx: Nginx, instance: Instance, since: int) -> None:
    """Until nginx has had a request answered by ``instance`` again (its access log), i.e.
    it no longer counts the instance as failed."""
    pattern = f"upstream={instance.address} ustatus=200 "
    deadline = time.monotonic() + 20
    while not any(pattern in line for line in nginx.log_lines(since)):
        assert time.monotonic() < deadline, "nginx did not send work to the instance again"
        time.sleep(0.1)


# -- the load ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    kind: str
    started: float
    ended: float
    status: int | None
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status is None or not 200 <= self.status < 300

    def in_flight_during(self, start: float, end: float) -> bool:
        """Whether the request overlapped [start, end]."""
        return self.started <= end and self.ended >= start


@dataclass
class Study:
    uid: str
    series: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Load:
    """Viewers and STOW-RS writers through nginx, each outcome recorded with its times."""

    base: str
    headers: dict[str, str]
    studies: list[Study]
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(READERS):
            self._spawn(self._viewer, random.Random(index))
        for index in range(WRITERS):
            self._spawn(self._writer, random.Random(100 + index))

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive()

    def _record(self, kind: str, call: Callable[[], httpx.Response]) -> None:
        started = time.monotonic()
        try:
            status: int | None = call().status_code
            error = ""
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        with self.lock:
            self.outcomes.append(Outcome(kind, started, time.monotonic(), status, error))

    def _viewer(self, rng: random.Random) -> None:
        """A viewer: the study list, a study's series, a series' metadata, its frames."""
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=30) as client:
            while not self.stop.is_set():
                study = rng.choice(self.studies)
                series, sops = rng.choice(list(study.series.items()))
                root = f"/dicomweb/studies/{study.uid}"
                self._record("qido", partial(client.get, "/dicomweb/studies", params=STUDY_LIST))
                self._record("series", partial(client.get, f"{root}/series"))
                self._record("metadata", partial(client.get, f"{root}/series/{series}/metadata"))
                for sop in sops:
                    frame = f"{root}/series/{series}/instances/{sop}/frames/1"
                    self._record("frames", partial(client.get, frame, headers={"Accept": FRAMES}))
                time.sleep(rng.uniform(0.01, 0.05))

    def _writer(self, rng: random.Random) -> None:
        """A modality bridge storing one small instance per STOW-RS request."""
        study = generate_uid()
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=30) as client:
            number = 0
            while not self.stop.is_set():
                number += 1
                body, content_type = multipart_body(
                    [to_bytes(make_instance(study_uid=study, instance_number=number))]
                )
                sent = {"Content-Type": content_type, "Accept": "application/dicom+json"}
                store = partial(client.post, "/dicomweb/studies", content=body, headers=sent)
                self._record("stow", store)
                time.sleep(rng.uniform(0.05, 0.15))

    def between(self, start: float, end: float) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if start <= o.started < end]


class SlowUploads:
    """STOW-RS uploads whose bodies trickle in across a moment: some of them are being
    received by the instance that gets killed then."""

    def __init__(self, base: str, headers: dict[str, str], count: int, seconds: float) -> None:
        self.results: list[Outcome] = []
        self.threads = [
            threading.Thread(target=self._one, args=(base, headers, seconds), daemon=True)
            for _ in range(count)
        ]

    def start(self, spacing: float) -> None:
        for thread in self.threads:
            thread.start()
            time.sleep(spacing)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)

    def _one(self, base: str, headers: dict[str, str], seconds: float) -> None:
        body, content_type = multipart_body([to_bytes(make_instance(rows=64, columns=64))])
        pieces = 8
        size = len(body) // pieces + 1

        def trickle() -> Iterator[bytes]:
            for start in range(0, len(body), size):
                yield body[start : start + size]
                time.sleep(seconds / pieces)

        started = time.monotonic()
        try:
            status: int | None = httpx.post(
                f"{base}/dicomweb/studies",
                content=trickle(),
                headers={**headers, "Content-Type": content_type},
                timeout=30,
            ).status_code
            error = ""
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        self.results.append(Outcome("slow-stow", started, time.monotonic(), status, error))


def seed(base: str, headers: dict[str, str]) -> list[Study]:
    """Two studies of two series of three instances, stored through nginx; the RetrieveURL
    of the answer names nginx's address (the Host header it forwards)."""
    studies = []
    for _ in range(2):
        study = Study(generate_uid())
        parts = []
        for series_number in (1, 2):
            series = generate_uid()
            study.series[series] = []
            for number in (1, 2, 3):
                ds = make_instance(
                    study_uid=study.uid,
                    series_uid=series,
                    series_number=series_number,
                    instance_number=number,
                    rows=64,
                    columns=64,
                )
                study.series[series].append(str(ds.SOPInstanceUID))
                parts.append(to_bytes(ds))
        body, content_type = multipart_body(parts)
        answer = httpx.post(
            f"{base}/dicomweb/studies",
            content=body,
            headers={**headers, "Content-Type": content_type, "Accept": "application/dicom+json"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["00081190"]["Value"][0].startswith(f"{base}/dicomweb/studies/")
        studies.append(study)
    return studies


def summary(name: str, seconds: float, outcomes: list[Outcome], retried: int) -> str:
    kinds: dict[str, list[int]] = {}
    for outcome in outcomes:
        counts = kinds.setdefault(outcome.kind, [0, 0])
        counts[0] += 1
        counts[1] += outcome.failed
    text = ", ".join(f"{k} {n} ({f} failed)" for k, (n, f) in sorted(kinds.items()))
    return (
        f"{name} ({seconds:.1f} s): {len(outcomes)} requests: {text}; retried by nginx: {retried}"
    )


def retried(lines: list[str]) -> int:
    """Requests nginx passed to more than one instance."""
    return sum(1 for line in lines if re.search(r"upstream=\S+, ", line))


def retried_gets(lines: list[str]) -> int:
    """GETs nginx passed to a second instance after the first failed, and answered 200."""
    return sum(1 for line in lines if re.search(r'"GET .*" 200 .*upstream=\S+, ', line))


def cut_off(outcome: Outcome) -> bool:
    """Whether the request failed as a connection closed in the middle of its answer."""
    return outcome.status is None and outcome.error.startswith(("RemoteProtocolError", "ReadError"))


# -- the test ------------------------------------------------------------------------------


@pytest.fixture
def shared_backends(
    postgres_url: str, redis_key_prefix: str, s3_bucket_name: str
) -> tuple[str, str, str]:
    return postgres_url, redis_key_prefix, s3_bucket_name


def test_nginx_over_two_hosts_survives_a_kill_and_a_rolling_restart(
    tmp_path: Path, shared_backends: tuple[str, str, str]
) -> None:
    postgres_url, redis_prefix, bucket = shared_backends
    began = time.monotonic()
    steps: list[str] = []
    with ExitStack() as stack:
        two = stack.enter_context(hosts(2))
        relays = Relays()
        stack.callback(relays.close)
        instances: list[Instance] = []
        for index, host in enumerate(two):
            env = {k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")}
            env |= {
                "RADCASE_INDEX_URL": relayed(postgres_url, relays, host),
                "RADCASE_CACHE_URL": relayed(REDIS_URL, relays, host) + f"?prefix={redis_prefix}",
                "RADCASE_BLOB_URL": f"s3://{bucket}/archive",
                "RADCASE_S3_ENDPOINT_URL": relayed(MOTO.endpoint, relays, host),
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "RADCASE_DATA_DIR": str(tmp_path / f"unused-{index}"),
                "RADCASE_DIMSE_PORT": "0",
                "RADCASE_ADMIN_PASSWORD": PASSWORD,
                "RADCASE_PASSWORD_HASH_ROUNDS": "4",
                "RADCASE_TRUSTED_PROXIES": host.gateway,
                "RADCASE_SHUTDOWN_DRAIN_SECONDS": str(DRAIN),
                "RADCASE_SHUTDOWN_GRACE_SECONDS": str(GRACE),
                "RADCASE_SWEEP_INTERVAL_SECONDS": "0",
                "RADCASE_LOG_LEVEL": "warning",
            }
            instance = Instance(host, env, tmp_path / f"instance-{index}.log")
            stack.callback(instance.end)
            instances.append(instance)
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.wait_ready()
        (tmp_path / "nginx").mkdir()
        nginx = Nginx(tmp_path / "nginx", free_port(), [i.address for i in instances])
        stack.callback(nginx.stop)

        token = httpx.post(
            f"{nginx.base}/api/auth/token",
            data={"grant_type": "password", "username": "admin", "password": PASSWORD},
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        studies = seed(nginx.base, headers)
        # The audit log records the client's address (X-Forwarded-For, from a trusted proxy).
        assert httpx.get(f"{nginx.base}/dicomweb/studies/{studies[0].uid}/series", headers=headers)
        audit = httpx.get(
            f"{nginx.base}/api/audit", params={"study_uid": studies[0].uid}, headers=headers
        ).json()
        assert {entry["source"] for entry in audit["entries"]} == {"127.0.0.1"}

        load = Load(nginx.base, headers, studies)
        load.start()
        time.sleep(1.0)

        # -- SIGKILL ----------------------------------------------------------------------
        victim = instances[0]
        assert victim.process is not None
        mark = nginx.log_mark()
        kill_start = time.monotonic()
        slow = SlowUploads(nginx.base, headers, count=10, seconds=2.0)
        slow.start(spacing=0.1)
        # The instance dies between the signal and its reaping (its sockets close then).
        killing = time.monotonic()
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        killed = time.monotonic()
        time.sleep(1.0)
        restart = nginx.log_mark()
        victim.start()
        victim.wait_ready()
        wait_in_rotation(nginx, victim, restart)
        slow.join()
        kill_end = time.monotonic()
        kill_lines = nginx.log_lines(mark, nginx.log_mark())
        kill_retried = retried(kill_lines)

        # -- rolling restart --------------------------------------------------------------
        roll_start = time.monotonic()
        mark = nginx.log_mark()
        for instance in instances:
            assert instance.process is not None
            instance.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert draining(instance), "/healthz did not turn unready during the drain delay"
            assert instance.process.wait(timeout=DRAIN + GRACE + EXIT_MARGIN + 5) == 0
            assert time.monotonic() - signalled < DRAIN + GRACE + EXIT_MARGIN
            exited = time.monotonic()
            back = nginx.log_mark()
            instance.start()
            instance.wait_ready()
            ready = time.monotonic()
            wait_in_rotation(nginx, instance, back)
            steps.append(
                f"  {instance.address}: exited {exited - signalled:.1f} s after SIGTERM, "
                f"ready {ready - exited:.1f} s after its start, back in nginx's rotation "
                f"{time.monotonic() - ready:.1f} s later"
            )
        roll_end = time.monotonic()
        load.finish()
        kill_phase = load.between(kill_start, kill_end)
        roll_phase = load.between(roll_start, roll_end)
        roll_retried = retried(nginx.log_lines(mark))

        print()
        print(f"set-up: {kill_start - began:.1f} s")
        kill_seconds = kill_end - kill_start
        print(summary("SIGKILL of one", kill_seconds, kill_phase + slow.results, kill_retried))
        caught = [o for o in kill_phase + slow.results if o.in_flight_during(killing, killed)]
        print(
            f"  in flight through nginx as it died ({killed - killing:.3f} s): {len(caught)}; "
            f"failed: {sum(o.failed for o in caught)}, of which told 502/503: "
            f"{sum(o.status in (502, 503) for o in caught)} "
            f"({', '.join(sorted({o.kind for o in caught if o.status in (502, 503)}))}), "
            f"cut off in the middle of their answer: {sum(cut_off(o) for o in caught)} "
            f"({', '.join(sorted({o.kind for o in caught if cut_off(o)}))}); "
            f"GETs nginx retried on the other instance: {retried_gets(kill_lines)}"
        )
        for step in steps:
            print(step)
        roll_seconds = roll_end - roll_start
        print(summary("rolling restart of both", roll_seconds, roll_phase, roll_retried))

        # Only what was in flight as the instance died fails. nginx retries a GET on the other
        # instance unless the dead one had begun to answer it (the answer is then cut off:
        # nothing can be retried once sent on), and answers a STOW-RS it was passing on 502.
        failed = [o for o in kill_phase if o.failed]
        assert all(o.in_flight_during(killing, killed) for o in failed), [
            o for o in failed if not o.in_flight_during(killing, killed)
        ]
        assert all(o.status in (502, 503) or cut_off(o) for o in failed), failed
        assert not [o for o in failed if o.kind != "stow" and o.status is not None], failed
        assert retried_gets(kill_lines) > 0, "nginx retried no GET on the other instance"
        told = [o for o in slow.results if o.failed]
        assert told, "no slow upload was on the killed instance (1 chance in 1024)"
        assert all(o.status in (502, 503) and o.in_flight_during(killing, killed) for o in told), (
            told
        )
        assert len(slow.results) == 10 and all(
            o.status == 200 for o in slow.results if not o.failed
        )

        assert roll_phase and not [o for o in roll_phase if o.failed], [
            o for o in roll_phase if o.failed
        ]
