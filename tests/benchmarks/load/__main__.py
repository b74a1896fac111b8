"""The load test: viewer (and resident) sessions with think time, played by Locust against
any server, ours or Orthanc, one after the other in the same run.

    python -m tests.benchmarks.load --url http://127.0.0.1:8080 \\
        [--vs http://127.0.0.1:8042 --vs-root /dicom-web --vs-label orthanc] \\
        [--users 1000] [--spawn-rate 50] [--duration 60] [--knee 100,250,500,1000] \\
        [--populate small] [--learners 50 --admin-password ...] [--json out.json]

Each run starts Locust headless (``locustfile.py`` beside this file) with ``--users`` users
arriving at ``--spawn-rate`` per second; the figures are reset once all have arrived
(``--reset-stats``) and taken over the next ``--duration`` seconds: requests/s, p50, p95
and p99 per kind of request, and every failure (status, socket error, timeout) with its
count. With ``--knee``, one run per step of users; the knee is the first step at which a
p95 crosses the plan's bound (searches and metadata 100 ms, frames 200 ms) or a request
fails. For this server, the cache hit rate over the run is read from ``/metrics``.

The client shares the machine with the servers it loads: Locust's own CPU is printed, and a
step at which Locust itself saturates a core measures Locust, not the server.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from conformance.bench.client import Server, Tally
from tests.benchmarks.load.prepare import Access, populate, prepare_learners
from tests.benchmarks.load.viewing import BOUNDS_MS

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"


@dataclass
class Kind:
    """One kind of request over a run."""

    name: str
    requests: int
    failures: int
    per_second: float
    p50: float
    p95: float
    p99: float


@dataclass
class Outcome:
    """One Locust run against one server."""

    label: str
    users: int
    kinds: list[Kind]
    failures: list[str]
    cache_hit_rate: float | None
    locust_cpu_seconds: float
    seconds: float

    @property
    def total(self) -> Kind | None:
        return next((k for k in self.kinds if k.name == "Aggregated"), None)

    def over_bounds(self) -> list[str]:
        """Why this run is past the knee: kinds over their bound, or failures."""
        late = [
            f"{k.name} p95 {k.p95:.0f} ms"
            for k in self.kinds
            if k.name in BOUNDS_MS and k.p95 > BOUNDS_MS[k.name]
        ]
        failed = sum(k.failures for k in self.kinds if k.name != "Aggregated")
        return late + ([f"{failed} failed"] if failed else [])


@dataclass
class Target:
    label: str
    url: str
    root: str
    ours: bool
    environment: dict[str, str] = field(default_factory=dict)


def cache_counts(target: Target) -> tuple[float, float] | None:
    """(hits, misses) of the server's cache lookups from its ``/metrics`` (read with the
    viewers' API key when there is one), summed over processes; None without them."""
    token = target.environment.get("LOAD_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{target.url}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    counts = {"hit": 0.0, "miss": 0.0}
    for result, value in re.findall(
        r'^radcase_cache_requests_total\{[^}]*result="(hit|miss)"[^}]*\} ([0-9.e+]+)$',
        text,
        re.M,
    ):
        counts[result] += float(value)
    return counts["hit"], counts["miss"]


def run_locust(
    target: Target, users: int, spawn_rate: float, duration: float, learners: int
) -> Outcome:
    """One headless Locust run; its figures."""
    spawn = users / spawn_rate
    classes = ["ViewerUser"] + (["LearnerUser"] if learners else [])
    before = cache_counts(target) if target.ours else None
    with tempfile.TemporaryDirectory(prefix="load-") as folder:
        prefix = Path(folder) / "run"
        env = {
            **os.environ,
            **target.environment,
            "LOAD_DICOMWEB_ROOT": target.root,
            "LOAD_LEARNER_SESSIONS": str(learners),
        }
        started, cpu = time.perf_counter(), _children_cpu()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(LOCUSTFILE),
                "--headless",
                "--host",
                target.url,
                "--users",
                str(users),
                "--spawn-rate",
                str(spawn_rate),
                "--run-time",
                f"{int(spawn + duration + 1)}s",
                "--reset-stats",
                "--stop-timeout",
                "5",
                "--csv",
                str(prefix),
                "--only-summary",
                "--loglevel",
                "WARNING",
                *classes,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu
        kinds = _kinds(prefix.with_name("run_stats.csv"))
        failures = _failures(prefix.with_name("run_failures.csv"))
        failures += _failures(prefix.with_name("run_exceptions.csv"), exceptions=True)
    if done.returncode not in (0, 1):  # 1: some requests failed, reported below
        raise RuntimeError(f"locust exited {done.returncode}: {done.stderr[-2000:]}")
    after = cache_counts(target) if target.ours else None
    rate = None
    if before and after:
        hits, misses = after[0] - before[0], after[1] - before[1]
        rate = hits / (hits + misses) if hits + misses else None
    return Outcome(
        target.label,
        users,
        kinds,
        failures,
        rate,
        cpu,
        seconds,
    )


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def _kinds(path: Path) -> list[Kind]:
    with path.open(newline="") as source:
        return [
            Kind(
                row["Name"],
                int(row["Request Count"]),
                int(row["Failure Count"]),
                float(row["Requests/s"]),
                float(row["50%"] if row["50%"] != "N/A" else "nan"),
                float(row["95%"] if row["95%"] != "N/A" else "nan"),
                float(row["99%"] if row["99%"] != "N/A" else "nan"),
            )
            for row in csv.DictReader(source)
        ]


def _failures(path: Path, exceptions: bool = False) -> list[str]:
    if not path.exists():
        return []
    with path.open(newline="") as source:
        if exceptions:
            return [
                f"{row['Count']}x exception: {row['Message']}" for row in csv.DictReader(source)
            ]
        return [
            f"{row['Occurrences']}x {row['Method']} {row['Name']}: {row['Error']}"
            for row in csv.DictReader(source)
        ]


def report(outcome: Outcome) -> str:
    lines = [
        f"### {outcome.label}, {outcome.users} users",
        "",
        "| request | requests | req/s | p50 ms | p95 ms | p99 ms | failed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for k in outcome.kinds:
        lines.append(
            f"| {k.name} | {k.requests} | {k.per_second:.1f} | {k.p50:.0f} | {k.p95:.0f} "
            f"| {k.p99:.0f} | {k.failures} |"
        )
    if outcome.cache_hit_rate is not None:
        lines.append(f"\ncache hit rate over the run: {100 * outcome.cache_hit_rate:.1f}%")
    lines.append(f"\nfailures: {'; '.join(outcome.failures) if outcome.failures else 'none'}")
    return "\n".join(lines)


def knee(outcomes: list[Outcome]) -> str:
    """The first step whose p95 crosses a bound or that has a failure."""
    for outcome in outcomes:
        if reasons := outcome.over_bounds():
            return f"{outcome.users} users ({', '.join(reasons)})"
    return f"not reached up to {outcomes[-1].users} users"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="this server's base URL")
    parser.add_argument("--root", default="/dicomweb")
    parser.add_argument("--label", default="ours")
    parser.add_argument("--vs", help="another server's base URL (Orthanc)")
    parser.add_argument("--vs-root", default="/dicom-web")
    parser.add_argument("--vs-label", default="orthanc")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--spawn-rate", type=float, default=50)
    parser.add_argument("--duration", type=float, default=60, help="seconds measured per run")
    parser.add_argument("--knee", help="comma-separated user counts, one run each")
    parser.add_argument("--populate", choices=["small", "medium"])
    parser.add_argument("--learners", type=int, default=0, help="resident sessions (ours)")
    parser.add_argument("--admin-password", help="with authentication on (ours)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    ours = Target(args.label, args.url.rstrip("/"), args.root, ours=True)
    targets = [ours]
    if args.vs:
        targets.append(Target(args.vs_label, args.vs.rstrip("/"), args.vs_root, ours=False))
    access: Access | None = None
    if args.admin_password:
        access = prepare_learners(ours.url, args.admin_password, max(args.learners, 1))
        ours.environment = {
            "LOAD_TOKEN": access.api_key,
            "LOAD_LEARNERS": ",".join(access.learners),
            "LOAD_PASSWORD": access.password,
        }
    if args.populate:
        for target in targets:
            server = Server(target.url + target.root, Tally())
            if target.environment.get("LOAD_TOKEN"):
                server.headers = {"Authorization": f"Bearer {target.environment['LOAD_TOKEN']}"}
            count = populate(server, args.populate)
            print(f"{target.label}: stored {count} instances", flush=True)

    steps = [int(n) for n in args.knee.split(",")] if args.knee else [args.users]
    outcomes: dict[str, list[Outcome]] = {t.label: [] for t in targets}
    print(
        f"# load test, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores; think time 0.5-3.5 s; {args.duration:.0f} s measured per run"
    )
    for number, users in enumerate(steps):
        order = targets if number % 2 == 0 else targets[::-1]
        for target in order:
            learners = args.learners if target.ours else 0
            outcome = run_locust(target, users, args.spawn_rate, args.duration, learners)
            outcomes[target.label].append(outcome)
            print(report(outcome), flush=True)
            print(f"(locust used {outcome.locust_cpu_seconds:.0f} s of CPU)\n", flush=True)
    if args.knee:
        for label, runs in outcomes.items():
            print(f"knee, {label}: {knee(runs)}")
    if args.json:
        args.json.write_text(
            json.dumps({k: [asdict(o) for o in v] for k, v in outcomes.items()}, indent=1)
        )


if __name__ == "__main__":
    main()
