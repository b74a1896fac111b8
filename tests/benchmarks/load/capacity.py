"""Capacity: how many requests of each kind one core of the server serves, and what each
request asks of the index, the cache and the blob store; from it, a sizing for N users.

    python -m tests.benchmarks.load.capacity --url http://127.0.0.1:8080 \\
        [--vs http://127.0.0.1:8042 --vs-root /dicom-web] [--seconds 10] [--connections 8] \\
        [--load-json load.json --users 1000,10000]

For each kind of request the viewers of the load test make (the study list, a study's
series, a series' metadata, a frame), wrk (a C load tool, so that the client costs little of
the shared CPU) sends that request over ``--connections`` connections for ``--seconds``,
cycling through every study, series or frame the server holds, with the headers OHIF sends.
The server's CPU time over the run is read from ``/proc`` for every process holding its
listening socket (the server must run on this machine), so the figure is the server's own
cost, whatever the client and the rest of the machine spend: requests per CPU-second, i.e.
per core. On this server, ``/metrics`` also gives the index, cache and blob operations and
audit writes per request.

With ``--load-json`` (written by ``python -m tests.benchmarks.load --json``), the request mix
per viewer session measured there is turned into a sizing for each ``--users`` count: server
cores at 60% busy (the headroom that kept p95 within bounds in the load test), and the index,
cache, blob and audit operations per second the shared backends must absorb.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from conformance.bench.memory import server_pids
from tests.benchmarks.load.viewing import BOUNDS_MS, DICOM_JSON, FRAME_ACCEPT, STUDY_LIST

SCRIPT = Path(__file__).resolve().parent / "requests.lua"
BUSY = 0.6
"""The share of a core sizing plans for: the load test kept its p95 bounds up to about
this use of the machine."""
OPERATION = re.compile(
    r'^radcase_store_operation_duration_seconds_count\{operation="([^"]+)",store="([^"]+)"\}'
    r" ([0-9.e+]+)$",
    re.M,
)
AUDIT = re.compile(r'^radcase_audit_writes_total\{result="written"\} ([0-9.e+]+)$', re.M)


@dataclass
class Capacity:
    """One kind of request, measured alone."""

    kind: str
    requests: int
    seconds: float
    cpu_seconds: float
    errors: int
    p50_ms: float
    p95_ms: float
    operations: dict[str, float]
    """Backend operations per request by store (index, cache, blobs, audit), this server only."""

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.requests if self.requests else float("nan")

    @property
    def per_core(self) -> float:
        return self.requests / self.cpu_seconds if self.cpu_seconds else float("nan")


def paths(base: str, root: str, headers: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
    """Each kind's Accept header and every path of that kind the server holds."""
    with httpx.Client(base_url=base + root, headers=headers, timeout=60) as client:

        def listed(path: str) -> list[dict[str, dict[str, list[str]]]]:
            answer = client.get(path, headers={"Accept": DICOM_JSON})
            answer.raise_for_status()
            return list(answer.json()) if answer.content else []

        def uid(element: dict[str, dict[str, list[str]]], tag: str) -> str:
            return str(element[tag]["Value"][0])

        series_paths, metadata_paths, frame_paths = [], [], []
        for study in listed(STUDY_LIST):
            study_uid = uid(study, "0020000D")
            series_paths.append(f"{root}/studies/{study_uid}/series")
            for series in listed(f"/studies/{study_uid}/series"):
                series_uid = uid(series, "0020000E")
                metadata = f"/studies/{study_uid}/series/{series_uid}/metadata"
                metadata_paths.append(root + metadata)
                for instance in listed(metadata):
                    frames = int((instance.get("00280008", {}).get("Value") or [1])[0])
                    sop = uid(instance, "00080018")
                    frame_paths += [
                        f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop}/frames/{n}"
                        for n in range(1, frames + 1)
                    ]
    return {
        "QIDO studies": (DICOM_JSON, [root + STUDY_LIST]),
        "QIDO series": (DICOM_JSON, series_paths),
        "series metadata": (DICOM_JSON, metadata_paths),
        "frame": (FRAME_ACCEPT, frame_paths),
    }


def cpu_seconds(pids: set[int]) -> float:
    """User plus system CPU time of these processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def operations(base: str, headers: dict[str, str]) -> Counter[str] | None:
    """This server's backend operation counts by store, from ``/metrics``; None elsewhere."""
    try:
        answer = httpx.get(f"{base}/metrics", headers=headers, timeout=10)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200 or "radcase_" not in answer.text:
        return None
    counts: Counter[str] = Counter()
    for _operation, store, value in OPERATION.findall(answer.text):
        counts[store] += int(float(value))
    counts["audit"] = sum(int(float(v)) for v in AUDIT.findall(answer.text))
    return counts


def measure(
    base: str,
    kind: str,
    accept: str,
    listed: list[str],
    *,
    headers: dict[str, str],
    seconds: float,
    connections: int,
) -> Capacity:
    """One wrk run of one kind of request; the server's CPU and operations over it."""
    port = urlsplit(base).port or 80
    pids = server_pids(port)
    if not pids:
        raise SystemExit(f"no process on this machine listens on port {port}")
    with tempfile.TemporaryDirectory(prefix="capacity-") as folder:
        listing, out = Path(folder) / "paths", Path(folder) / "out.json"
        listing.write_text("\n".join(listed) + "\n")
        env = {
            **os.environ,
            "CAPACITY_PATHS": str(listing),
            "CAPACITY_ACCEPT": accept,
            "CAPACITY_AUTHORIZATION": headers.get("Authorization", ""),
            "CAPACITY_OUT": str(out),
        }
        before, cpu = operations(base, headers), cpu_seconds(pids)
        subprocess.run(
            [
                "wrk",
                f"-t{min(2, connections)}",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "--timeout",
                "10s",
                "-s",
                str(SCRIPT),
                base,
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        cpu = cpu_seconds(pids) - cpu
        after = operations(base, headers)
        figures = json.loads(out.read_text())
    requests = int(figures["requests"])
    per_request = {}
    if before is not None and after is not None and requests:
        per_request = {store: (after[store] - before[store]) / requests for store in after}
    return Capacity(
        kind,
        requests,
        figures["microseconds"] / 1e6,
        cpu,
        sum(int(figures[k]) for k in ("connect", "read", "write", "status", "timeout")),
        figures["p50_us"] / 1000,
        figures["p95_us"] / 1000,
        per_request,
    )


def table(label: str, results: list[Capacity], connections: int) -> str:
    lines = [
        f"### {label}: each kind alone, {connections} connections",
        "",
        "| request | req/s | server CPU ms/request | req/s per core | p50 ms | p95 ms | errors "
        "| index ops | cache ops | blob ops | audit writes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ops = [r.operations.get(s) for s in ("index", "cache", "blobs", "audit")]
        shown = " | ".join("" if v is None else f"{v:.2f}" for v in ops)
        lines.append(
            f"| {r.kind} | {r.per_second:.0f} | {r.cpu_ms:.2f} | {r.per_core:.0f} "
            f"| {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.errors} | {shown} |"
        )
    return "\n".join(lines)


def per_user_rates(load_json: Path, label: str) -> dict[str, float]:
    """Requests/s per viewer session by kind, pooled over the load test's runs of ``label``
    whose frames kept within their bound: past the knee, sessions wait on the server and
    ask less of it, which would understate what a user costs."""
    runs = [
        run
        for run in json.loads(load_json.read_text())[label]
        if all(
            kind["p95"] <= BOUNDS_MS["frame"] for kind in run["kinds"] if kind["name"] == "frame"
        )
    ]
    if not runs:
        raise SystemExit(f"no run of {label} in {load_json} kept frames within their bound")
    rates: Counter[str] = Counter()
    for run in runs:
        for kind in run["kinds"]:
            if kind["name"] != "Aggregated":
                rates[kind["name"]] += kind["per_second"]
    users = sum(run["users"] for run in runs)
    return {kind: rate / users for kind, rate in rates.items()}


def sizing(results: list[Capacity], rates: dict[str, float], users: list[int]) -> str:
    """Cores and backend operations/s for each user count, from the per-user request mix."""
    by_kind = {r.kind: r for r in results}
    lines = [
        f"### sizing at {int(100 * BUSY)}% CPU, viewer sessions as in the load test",
        "",
        "| users | requests/s | server cores | index ops/s | cache ops/s | blob ops/s "
        "| audit writes/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for count in users:
        load = {kind: rate * count for kind, rate in rates.items() if kind in by_kind}
        cores = sum(load[k] * by_kind[k].cpu_seconds / by_kind[k].requests for k in load) / BUSY
        ops = {
            store: sum(load[k] * by_kind[k].operations.get(store, 0.0) for k in load)
            for store in ("index", "cache", "blobs", "audit")
        }
        lines.append(
            f"| {count:,} | {sum(load.values()):,.0f} | {cores:.1f} | {ops['index']:,.0f} "
            f"| {ops['cache']:,.0f} | {ops['blobs']:,.0f} | {ops['audit']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--root", default="/dicomweb")
    parser.add_argument("--label", default="ours")
    parser.add_argument("--vs")
    parser.add_argument("--vs-root", default="/dicom-web")
    parser.add_argument("--vs-label", default="orthanc")
    parser.add_argument("--token", default="", help="bearer token for this server")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--load-json", type=Path, help="the load test's --json output")
    parser.add_argument("--users", default="1000,10000")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    targets = [(args.label, args.url.rstrip("/"), args.root, args.token)]
    if args.vs:
        targets.append((args.vs_label, args.vs.rstrip("/"), args.vs_root, ""))
    print(
        f"# capacity, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} cores"
    )
    measured: dict[str, list[dict[str, object]]] = {}
    for label, base, root, token in targets:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        results = [
            measure(
                base,
                kind,
                accept,
                listed,
                headers=headers,
                seconds=args.seconds,
                connections=args.connections,
            )
            for kind, (accept, listed) in paths(base, root, headers).items()
        ]
        measured[label] = [
            asdict(r) | {"per_second": r.per_second, "cpu_ms": r.cpu_ms, "per_core": r.per_core}
            for r in results
        ]
        print(table(label, results, args.connections), flush=True)
        if args.load_json and label == args.label:
            rates = per_user_rates(args.load_json, label)
            print()
            print(sizing(results, rates, [int(n) for n in args.users.split(",")]))
        print()
    if args.json:
        args.json.write_text(json.dumps(measured, indent=1))


if __name__ == "__main__":
    main()
