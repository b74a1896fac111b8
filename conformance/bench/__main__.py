"""``python -m conformance.bench --dicomweb URL [--dimse HOST:PORT:AET] [--vs URL2
[--vs-dimse HOST:PORT:AET]] [--scale small|medium|check] [--rounds N] [--json OUT]``

Prints, for each figure, the median over rounds for each server and, with ``--vs``, the
ratio expressed as how many times better the first server is (above 1: the first server
is better, whether the figure is a rate or a latency).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from conformance.bench import figures
from conformance.bench.figures import BenchError, Figure
from conformance.bench.run import SCALES, Plan, Target, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.bench", description=__doc__)
    parser.add_argument("--dicomweb", required=True, help="DICOMweb root of the server")
    parser.add_argument("--dimse", help="its DIMSE SCP as HOST:PORT:AET (C-STORE ingest)")
    parser.add_argument("--label", default=None, help="name of the server in the report")
    parser.add_argument("--vs", help="DICOMweb root of the server to compare with")
    parser.add_argument("--vs-dimse", help="its DIMSE SCP as HOST:PORT:AET")
    parser.add_argument("--vs-label", default=None, help="name of the other server")
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions per figure")
    parser.add_argument("--json", type=Path, help="write every value measured here")
    args = parser.parse_args(argv)

    targets = [Target.create(args.label or _name(args.dicomweb), args.dicomweb, args.dimse)]
    if args.vs:
        targets.append(Target.create(args.vs_label or _name(args.vs), args.vs, args.vs_dimse))
    plan = Plan(scale=args.scale, rounds=args.rounds)
    try:
        run(targets, plan, lambda line: print(f"# {line}", file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"benchmark stopped: {exc}", file=sys.stderr)
        return 1
    print(report(targets, plan))
    if args.json:
        args.json.write_text(json.dumps(as_json(targets, plan), indent=2))
    return 1 if any(t.server.errors.count for t in targets) else 0


def _name(url: str) -> str:
    return url.split("//", 1)[-1]


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    memory = next(
        (
            int(line.split()[1]) / 1024 / 1024
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal")
        ),
        0.0,
    )
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def report(targets: list[Target], plan: Plan) -> str:
    """A Markdown table: figure, unit, each server's median, and the first server's lead."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    columns = [t.label for t in targets] + (["ratio"] if len(targets) > 1 else [])
    lines = [
        f"{when}; {machine()}; scale {plan.scale}; medians of {plan.rounds} rounds",
        "",
        "| figure | unit | " + " | ".join(columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for figure in figures.ALL:
        values = [t.result(figure) for t in targets]
        if all(v is None for v in values):
            continue
        cells = [_format(v, figure) for v in values]
        row = f"| {figure.name} | {figure.unit} | " + " | ".join(cells) + " |"
        if len(targets) > 1:
            row += f" {_ratio(figure, values[0], values[1])} |"
        lines.append(row)
    for target in targets:
        for example in target.server.errors.examples:
            lines.append(f"\nerror on {target.label}: {example}")
    return "\n".join(lines)


def _format(value: float | None, figure: Figure) -> str:
    if value is None:
        return "n/a"
    if figure is figures.ERRORS:
        return str(int(value))
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(figure: Figure, ours: float | None, theirs: float | None) -> str:
    """How many times better the first server is: rates divide one way, latencies the other."""
    if ours is None or theirs is None:
        return "n/a"
    if figure is figures.ERRORS:
        return "=" if ours == theirs else ("fewer" if ours < theirs else "more")
    if ours == 0 or theirs == 0:
        return "n/a"
    lead = ours / theirs if figure.higher_is_better else theirs / ours
    return f"{lead:.2f}x"


def as_json(targets: list[Target], plan: Plan) -> dict[str, object]:
    return {
        "date": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "scale": plan.scale,
        "rounds": plan.rounds,
        "servers": {
            t.label: {
                f.name: {"unit": f.unit, "median": t.result(f), "values": t.values.get(f, [])}
                for f in figures.ALL
            }
            | {"error_examples": t.server.errors.examples}
            for t in targets
        },
    }


if __name__ == "__main__":
    sys.exit(main())
