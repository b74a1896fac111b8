"""What a pass and a verification say to the operator, one line per fact."""

from __future__ import annotations

from collections.abc import Iterator

from radcase_pacs.migration.passes import PassReport
from radcase_pacs.migration.verify import Verification


def pass_lines(report: PassReport, *, lag: float | None = None) -> Iterator[str]:
    archives, tables = report.archives, report.tables
    parts = [
        f"{sum(a.copied for a in archives)} instances copied "
        f"({sum(a.present for a in archives)} already there, "
        f"{sum(a.removed for a in archives)} removed)",
        f"{sum(t.inserted for t in tables)} rows copied, {sum(t.updated for t in tables)} "
        f"changed, {sum(t.removed for t in tables)} removed",
    ]
    if report.waiting:
        parts.append(f"{report.waiting} rows wait for the rows they refer to")
    if report.held.copied:
        parts.append(f"{report.held.copied} held-back teaching copies")
    if lag is not None:
        parts.append(f"the target is at most {lag:.1f} s behind the source")
    yield f"pass {report.number} ({report.seconds:.1f} s): " + "; ".join(parts)
    yield from (f"  problem: {p}" for p in report.problems)


def verification_lines(result: Verification) -> Iterator[str]:
    for a in result.archives:
        yield (
            f"{a.archive}tenant {a.tenant}: {a.source} instances in the source, "
            f"{a.verified} verified byte-identical"
        )
        yield from (f"  problem: {p}" for p in (*a.unmatched, *a.problems))
    for t in result.tables:
        line = f"table {t.table}: {t.source_rows} rows in the source, {t.target_rows} in the target"
        if t.ok:
            yield f"{line}, identical"
        else:
            yield (
                f"{line}: {t.missing} missing, {t.differing} differing, "
                f"{t.extra} in the target only"
            )
            yield from (f"  problem: {e}" for e in t.examples)
    yield f"held-back teaching copies: {result.held.present} identical"
    yield from (f"  problem: {p}" for p in result.held.problems)
    yield from (f"problem: {p}" for p in result.keys)
    yield "verification: OK" if result.ok else "verification: FAILED"
