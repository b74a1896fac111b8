"""Runs the registered checks against one server and reports them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

from conformance.context import Context
from conformance.registry import REGISTRY, Result, run_check

# Run order: STOW first (it uploads the corpus every later check reads), DIMSE last.
SERVICES = (
    "stow",
    "qido",
    "wado",
    "metadata",
    "frames",
    "rendered",
    "wado_uri",
    "errors",
    "cors",
    "dimse",
)


def run_all(context: Context, *, report: Callable[[Result], None] = lambda r: None) -> list[Result]:
    import conformance.checks  # noqa: F401 - registers the checks

    results = []
    for item in sorted(REGISTRY, key=lambda c: SERVICES.index(c.service)):
        result = run_check(item, context)
        report(result)
        results.append(result)
    return results


def line(result: Result) -> str:
    text = f"{result.status:4}  [{result.service}] {result.name}  ({result.section})"
    return f"{text}\n      {result.detail}" if result.detail else text


def summary(results: Iterable[Result]) -> str:
    statuses = [r.status for r in results]
    return (
        f"{statuses.count('PASS')} passed, {statuses.count('FAIL')} failed, "
        f"{statuses.count('SKIP')} skipped"
    )


def write_json(path: Path, results: list[Result]) -> None:
    records = [
        {k: v for k, v in asdict(r).items() if k != "seconds"} | {"seconds": round(r.seconds, 3)}
        for r in results
    ]
    path.write_text(
        json.dumps({"results": records, "summary": summary(results)}, indent=2, ensure_ascii=False),
        encoding="utf-8",
    )
