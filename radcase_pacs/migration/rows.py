"""One table on both sides of a migration: read in key order a page at a time, matched by
primary key, written a batch per statement (``executemany``), compared value by value.

Pages of the source are taken in the source's own key order; the target's rows are always
fetched by key (:func:`~radcase_pacs.migration.catalog.keys_condition`), never by range, so
that the two databases need not sort text alike (a PostgreSQL collation and SQLite's byte
order differ). Values are compared after the one difference the dialects make in what they
give back: PostgreSQL text holds no NUL, which it stores as U+FFFD
(:mod:`storage.database.postgres`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from radcase_pacs.migration.catalog import column_types, keys_condition, move_counter_past_ids
from radcase_pacs.migration.tables import CopiedTable, Kind
from storage.database.base import Cursor, Database, sql_identifier

ROWS_PER_PAGE = 500
MAX_PARAMETERS = 30_000
"""Below SQLite's limit of bound parameters per statement (32,766), and PostgreSQL's."""
EXAMPLES = 10
"""Differences named one by one in a report; the rest are counted."""

Row = tuple[Any, ...]
Key = tuple[Any, ...]
Progress = Callable[[int], None] | None


def comparable(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def comparable_row(row: Sequence[Any]) -> Row:
    return tuple(comparable(value) for value in row)


def same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Whether two rows hold the same values (compared as they are first: nearly always
    equal, and normalising every value of every row cost more than reading them)."""
    return tuple(a) == tuple(b) or comparable_row(a) == comparable_row(b)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class TableCopy:
    """What one pass did to one table."""

    table: str
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    waiting: int = 0
    """Rows left for the next pass: their parent row was not in the target yet."""
    problems: list[str] = field(default_factory=list)
    written: list[Key] = field(default_factory=list)
    """The keys of the rows inserted or updated (what a switch's last check reads again)."""


@dataclass
class TableCheck:
    """One table compared whole."""

    table: str
    source_rows: int = 0
    target_rows: int = 0
    missing: int = 0
    differing: int = 0
    extra: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.differing or self.extra)

    def note(self, text: str) -> None:
        if len(self.examples) < EXAMPLES:
            self.examples.append(text)


class TableSides:
    """``spec``'s table in ``source`` and in ``target``, with the columns both have."""

    def __init__(
        self, spec: CopiedTable, source: Database, target: Database, columns: Sequence[str]
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        self.name = sql_identifier(spec.name, "table name")
        self.columns = [sql_identifier(c, "column name") for c in columns]
        self.key_at = [self.columns.index(k) for k in spec.key]
        self.value_at = [n for n in range(len(self.columns)) if n not in self.key_at]
        self.types = {db: column_types(db, spec.name) for db in (source, target)}

    def key(self, row: Sequence[Any]) -> Key:
        return tuple(comparable(row[n]) for n in self.key_at)

    # -- reads ----------------------------------------------------------------------------

    def keys(self, db: Database) -> set[Key]:
        with db.read() as cur:
            rows = cur.execute(f"SELECT {', '.join(self.spec.key)} FROM {self.name}").fetchall()
        return {comparable_row(row) for row in rows}

    def count(self, db: Database) -> int:
        with db.read() as cur:
            return int(cur.execute(f"SELECT COUNT(*) FROM {self.name}").fetchone()[0])

    def pages(self, db: Database, size: int = ROWS_PER_PAGE) -> Iterator[list[Row]]:
        """Every row of ``db``'s table in its key order, ``size`` at a time (keyset pages:
        rows added or removed meanwhile neither repeat nor shift a page)."""
        select = f"SELECT {', '.join(self.columns)} FROM {self.name}"
        order = ", ".join(self.spec.key)
        after: Key | None = None
        while True:
            with db.read() as cur:
                if after is None:
                    sql, params = f"{select} ORDER BY {order} LIMIT ?", [size]
                else:
                    marks = ", ".join("?" for _ in after)
                    sql = f"{select} WHERE ({order}) > ({marks}) ORDER BY {order} LIMIT ?"
                    params = [*after, size]
                page = [tuple(row) for row in cur.execute(sql, params).fetchall()]
            if page:
                yield page
            if len(page) < size:
                return
            after = tuple(page[-1][n] for n in self.key_at)

    def rows_by_key(self, db: Database, keys: Sequence[Key]) -> dict[Key, Row]:
        found: dict[Key, Row] = {}
        select = f"SELECT {', '.join(self.columns)} FROM {self.name}"
        for chunk in chunks(keys, self._keys_per_statement()):
            where, params = self._matching(db, chunk)
            with db.read() as cur:
                for row in cur.execute(f"{select} WHERE {where}", params).fetchall():
                    found[self.key(row)] = tuple(row)
        return found

    def present_ids(self, db: Database, table: str, ids: Iterable[Any]) -> set[Any]:
        """Those of ``ids`` that are the ``id`` of a row of ``table`` in ``db``."""
        name = sql_identifier(table, "table name")
        wanted = sorted({i for i in ids if i is not None})
        present: set[Any] = set()
        for chunk in chunks(wanted, MAX_PARAMETERS):
            where, params = keys_condition(db, ["id"], {"id": "bigint"}, [(i,) for i in chunk])
            with db.read() as cur:
                rows = cur.execute(f"SELECT id FROM {name} WHERE {where}", params)
                present |= {row[0] for row in rows.fetchall()}
        return present

    def _keys_per_statement(self) -> int:
        return max(1, min(ROWS_PER_PAGE, MAX_PARAMETERS // len(self.spec.key)))

    def _matching(self, db: Database, keys: Sequence[Key]) -> tuple[str, list[Any]]:
        return keys_condition(db, self.spec.key, self.types[db], keys)

    # -- writes (in the caller's transaction on the target) -------------------------------

    def insert(self, cur: Cursor, rows: Sequence[Row]) -> None:
        if rows:
            marks = ", ".join("?" for _ in self.columns)
            cur.executemany(
                f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({marks})", rows
            )

    def update(self, cur: Cursor, rows: Sequence[Row]) -> None:
        if not self.value_at or not rows:
            return  # every column is part of the key: a changed row is another row
        assignments = ", ".join(f"{self.columns[n]} = ?" for n in self.value_at)
        where = " AND ".join(f"{k} = ?" for k in self.spec.key)
        cur.executemany(
            f"UPDATE {self.name} SET {assignments} WHERE {where}",
            [[*(row[n] for n in self.value_at), *(row[n] for n in self.key_at)] for row in rows],
        )

    def delete(self, cur: Cursor, keys: Sequence[Key]) -> None:
        for chunk in chunks(keys, self._keys_per_statement()):
            where, params = self._matching(self.target, chunk)
            cur.execute(f"DELETE FROM {self.name} WHERE {where}", params)


def remove_extra_rows(sides: TableSides) -> TableCopy:
    """Remove from the target the rows the source no longer has (a ROWS table; run over the
    tables children first, before any is copied)."""
    outcome = TableCopy(sides.spec.name)
    extra = sorted(sides.keys(sides.target) - sides.keys(sides.source), key=repr)
    if extra:
        with sides.target.transaction() as cur:
            sides.delete(cur, extra)
        outcome.removed = len(extra)
    return outcome


def copy_rows(sides: TableSides, outcome: TableCopy, on_rows: Progress = None) -> None:
    """Insert the source's rows the target lacks and update those that differ, a page per
    transaction (a pass cut short keeps its committed pages; the next one goes on)."""
    if sides.spec.kind is Kind.LOG:
        _copy_log(sides, outcome, on_rows)
    else:
        for page in sides.pages(sides.source):
            existing = sides.rows_by_key(sides.target, [sides.key(row) for row in page])
            inserts, updates = [], []
            for row in page:
                old = existing.get(sides.key(row))
                if old is None:
                    inserts.append(row)
                elif not same(old, row):
                    updates.append(row)
            inserts = _with_parents(sides, inserts, outcome)
            if inserts or updates:
                with sides.target.transaction() as cur:
                    sides.update(cur, updates)
                    sides.insert(cur, inserts)
                outcome.inserted += len(inserts)
                outcome.updated += len(updates)
                outcome.written += [sides.key(row) for row in (*inserts, *updates)]
            if on_rows is not None:
                on_rows(len(page))
    if sides.spec.numbered and outcome.inserted:
        with sides.target.transaction() as cur:
            move_counter_past_ids(sides.target, cur, sides.spec.name)


def _copy_log(sides: TableSides, outcome: TableCopy, on_rows: Progress) -> None:
    """The rows of the source the target lacks, inserted in id order; the target's own are
    never touched, and one the source does not have is reported."""
    source_ids, target_ids = sides.keys(sides.source), sides.keys(sides.target)
    extra = sorted(target_ids - source_ids)
    if extra:
        shown = ", ".join(str(key[0]) for key in extra[:EXAMPLES])
        outcome.problems.append(
            f"{sides.spec.name}: the target holds {len(extra)} row(s) the source does not "
            f"(ids {shown}{'...' if len(extra) > EXAMPLES else ''}); they are left as they are"
        )
    missing = sorted(source_ids - target_ids)
    if on_rows is not None:
        on_rows(len(source_ids) - len(missing))
    for chunk in chunks(missing, ROWS_PER_PAGE):
        found = sides.rows_by_key(sides.source, chunk)
        rows = [found[key] for key in chunk if key in found]  # a row may vanish meanwhile
        with sides.target.transaction() as cur:
            sides.insert(cur, rows)
        outcome.inserted += len(rows)
        outcome.written += [sides.key(row) for row in rows]
        if on_rows is not None:
            on_rows(len(chunk))


def _with_parents(sides: TableSides, rows: list[Row], outcome: TableCopy) -> list[Row]:
    """``rows`` whose parent rows are in the target; the others wait for the next pass."""
    for column, parent in sides.spec.parents:
        if not rows:
            break
        at = sides.columns.index(column)
        present = sides.present_ids(sides.target, parent, (row[at] for row in rows))
        kept = [row for row in rows if row[at] in present]
        outcome.waiting += len(rows) - len(kept)
        rows = kept
    return rows


def compare_rows(sides: TableSides) -> TableCheck:
    """Every row of the source found in the target with the same values, and nothing else
    in the target."""
    check = TableCheck(sides.spec.name)
    unseen = sides.keys(sides.target)
    check.target_rows = len(unseen)
    for page in sides.pages(sides.source):
        check.source_rows += len(page)
        existing = sides.rows_by_key(sides.target, [sides.key(row) for row in page])
        for row in page:
            key = sides.key(row)
            unseen.discard(key)
            old = existing.get(key)
            if old is None:
                check.missing += 1
                check.note(f"{sides.spec.name} {_shown(key)}: missing in the target")
            elif not same(old, row):
                check.differing += 1
                columns = [
                    sides.columns[n]
                    for n in range(len(row))
                    if comparable(row[n]) != comparable(old[n])
                ]
                check.note(f"{sides.spec.name} {_shown(key)}: differs in {', '.join(columns)}")
    check.extra = len(unseen)
    for key in sorted(unseen, key=repr)[: max(0, EXAMPLES - len(check.examples))]:
        check.note(f"{sides.spec.name} {_shown(key)}: in the target only")
    return check


def _shown(key: Key) -> str:
    return "(" + ", ".join(str(v) for v in key) + ")"


def check_written(sides: TableSides, written: Sequence[Key], *, counts: bool = True) -> TableCheck:
    """The short check of a switch's passes, once every row copied before them was compared:
    each row they wrote reads back as the source's, and, with ``counts``, the row counts
    agree."""
    check = TableCheck(sides.spec.name)
    if counts:
        check.source_rows, check.target_rows = sides.count(sides.source), sides.count(sides.target)
    theirs = sides.rows_by_key(sides.source, written)
    ours = sides.rows_by_key(sides.target, written)
    for key, row in theirs.items():
        old = ours.get(key)
        if old is None:
            check.missing += 1
            check.note(f"{sides.spec.name} {_shown(key)}: missing in the target")
        elif not same(old, row):
            check.differing += 1
            check.note(f"{sides.spec.name} {_shown(key)}: differs after it was copied")
    if check.target_rows != check.source_rows and not (check.missing or check.differing):
        check.extra = abs(check.target_rows - check.source_rows)
        check.note(f"{sides.spec.name}: the row counts differ")
    return check
