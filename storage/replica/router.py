"""Which server answers a read that may go to a PostgreSQL streaming replica: the replica when
it has replayed the latest write of the read's scope and is not lagging beyond a bound, the
primary otherwise. A replica that fails never fails the read: the primary answers it.

Read-your-writes. After a write commits on the primary, the writer records the primary's WAL
insert position under the write's scope (:meth:`ReplicaRouter.written`, kept by
:mod:`storage.replica.positions`). The position is read after the commit returned, so it is at
or past the end of the commit record; a standby whose ``pg_last_wal_replay_lsn()`` is at or
past it has replayed that commit, and replay makes a commit visible to the standby's new
snapshots in WAL order. A read of the scope goes to the replica only then, so whoever wrote,
in whichever process, reads their write next.

The replica's state (replay position, lag) is asked on a connection of its own and kept for
``FRESH_FOR`` (20 ms), so that most reads cost no round trip for it; a read that needs a later
position than the one kept asks again (at most every ``RECHECK_AFTER``) before it settles for
the primary. The lag is the usual standby measure: 0 while the standby streams and has
replayed all it has received (WAL still on its way is not counted), otherwise the time since
the last transaction it replayed committed on the primary (more than the true lag when the
primary was idle before; the two hosts' clocks are assumed to agree). A replica that cannot be
reached, is no standby, or lags beyond ``max_lag`` seconds serves no read; an unreachable one
is asked again after ``RETRY_AFTER``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psycopg

from storage.database.base import Database
from storage.errors import BackendFailure
from storage.replica.positions import WritePositions

log = logging.getLogger(__name__)

T = TypeVar("T")
PRIMARY = "primary"
REPLICA = "replica"
FRESH_FOR = 0.02
"""Seconds a replica state is used without asking again. Its replay position only grows, so
an old one errs towards the primary, never towards a replica that lacks a write; its age
bounds how late a replica that stops or falls behind is noticed (a read that fails there is
answered by the primary all the same)."""
RECHECK_AFTER = 0.0005
"""Seconds after which a read the kept state is too old for asks again."""
RETRY_AFTER = 1.0
"""Seconds an unreachable replica is left alone."""
CONNECT_TIMEOUT = 2
"""Seconds to connect to the replica to ask its state (libpq counts whole seconds)."""
PROBE_WAIT = 0.05
"""Seconds a read waits for another thread's check of the replica before it goes without."""
STATE_SQL = (
    "SELECT pg_is_in_recovery(), "
    "pg_last_wal_replay_lsn() - '0/0'::pg_lsn, "
    "pg_last_wal_receive_lsn() - '0/0'::pg_lsn, "
    "EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), "
    "EXISTS (SELECT 1 FROM pg_stat_wal_receiver)"
)
POSITION_SQL = "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"


@dataclass(frozen=True)
class ReplicaState:
    """What the replica said when last asked."""

    replayed: int | None
    """WAL position replayed; None when the replica could not be asked or is no standby."""
    lag: float | None
    """Seconds behind the primary; None when unknown."""
    checked: float
    """``time.monotonic()`` of the question."""

    def serves(self, required: int, max_lag: float) -> bool:
        return (
            self.replayed is not None
            and self.lag is not None
            and self.lag <= max_lag
            and self.replayed >= required
        )


NEVER_ASKED = ReplicaState(None, None, float("-inf"))


class ReplicaObserver(Protocol):
    """Told where each routed read went and what each check of the replica found (metrics)."""

    def read_routed(self, target: str) -> None: ...

    def replica_checked(self, state: ReplicaState) -> None: ...


class ReplicaRouter:
    """The routing of one replica, shared by every store that reads from it."""

    def __init__(
        self,
        replica_url: str,
        positions: WritePositions,
        *,
        max_lag: float,
        observer: ReplicaObserver | None = None,
    ) -> None:
        """``replica_url``: a libpq connection string of the replica (to ask its state)."""
        self.replica_url = replica_url
        self.positions = positions
        self.max_lag = max_lag
        self.observer = observer
        self._state = NEVER_ASKED
        self._down_until = 0.0
        self._connection: psycopg.Connection[Any] | None = None
        self._check_lock = threading.Lock()
        self._problem: str | None = None

    def __repr__(self) -> str:
        from storage.urls import mask_password

        return f"ReplicaRouter({mask_password(self.replica_url)!r}, max_lag={self.max_lag})"

    def open(self) -> None:
        """Open the positions' store; the replica is asked on the first read (a replica down
        at start-up delays nothing)."""
        self.positions.open()

    def close(self) -> None:
        with self._check_lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        self.positions.close()

    # -- writes ---------------------------------------------------------------------------

    def written(self, scope: str, primary: Database) -> None:
        """Record that a write of ``scope`` committed on ``primary`` (call it after the commit
        returned, before telling anyone the write is done)."""
        try:
            with primary.read() as cur:
                position = int(cur.execute(POSITION_SQL).fetchone()[0])
        except BackendFailure as exc:
            # The write is committed; failing its request now would report it lost.
            log.warning("could not read the primary's WAL position after a write: %s", exc)
            return
        self.positions.advance(scope, position)

    # -- reads ----------------------------------------------------------------------------

    def serves(self, required: int | None) -> bool:
        """Whether the replica may answer a read now that needs it to have replayed up to
        ``required`` (a scope's position; None when the positions cannot be read)."""
        if required is None:
            return False
        return self._state_for(required).serves(required, self.max_lag)

    def read(self, scope: str, on_replica: Callable[[], T], on_primary: Callable[[], T]) -> T:
        """``on_replica()`` when the replica may answer a read of ``scope``, else, or when it
        fails, ``on_primary()``."""
        return self.read_after(self.positions.required(scope), on_replica, on_primary)

    def read_after(
        self, required: int | None, on_replica: Callable[[], T], on_primary: Callable[[], T]
    ) -> T:
        """:meth:`read` with the scope's position already read."""
        if self.serves(required):
            try:
                result = on_replica()
            except BackendFailure as exc:
                self.replica_failed(exc)
            else:
                self.routed(REPLICA)
                return result
        self.routed(PRIMARY)
        return on_primary()

    def routed(self, target: str) -> None:
        if self.observer is not None:
            self.observer.read_routed(target)

    def replica_failed(self, exc: Exception) -> None:
        """A read on the replica failed: it is asked again before the next read goes there."""
        log.warning("a read on the replica failed, the primary answers it: %s", exc)
        self._state = ReplicaState(None, None, time.monotonic())

    # -- the replica's state --------------------------------------------------------------

    def _state_for(self, required: int) -> ReplicaState:
        state, now = self._state, time.monotonic()
        if now < self._down_until:
            return state
        age = now - state.checked
        enough = state.replayed is not None and state.replayed >= required
        if (age < FRESH_FOR and enough) or (age < RECHECK_AFTER and state.replayed is not None):
            return state
        if not self._check_lock.acquire(timeout=PROBE_WAIT):
            return self._state
        try:
            if self._state.checked > now:  # another thread asked while this one waited
                return self._state
            return self._check()
        finally:
            self._check_lock.release()

    def _check(self) -> ReplicaState:
        """Ask the replica (the check lock held)."""
        try:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(
                    self.replica_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                )
            row = self._connection.execute(STATE_SQL).fetchone()
        except psycopg.Error as exc:
            self._discard_connection()
            return self._unusable("unreachable", str(exc))
        assert row is not None
        recovering, replayed, received, since_commit, streaming = row
        if not recovering or replayed is None:
            return self._unusable("not a standby", "pg_is_in_recovery() is false")
        caught_up = streaming and received is not None and replayed >= received
        lag = 0.0 if caught_up else None if since_commit is None else max(0.0, float(since_commit))
        state = ReplicaState(int(replayed), lag, time.monotonic())
        if lag is None or lag > self.max_lag:
            return self._settle(state, "lagging beyond the bound", f"{lag} s behind")
        return self._settle(state, None, "")

    def _unusable(self, problem: str, detail: str) -> ReplicaState:
        """A replica that cannot answer reads: left alone for ``RETRY_AFTER`` seconds."""
        self._down_until = time.monotonic() + RETRY_AFTER
        return self._settle(ReplicaState(None, None, time.monotonic()), problem, detail)

    def _settle(self, state: ReplicaState, problem: str | None, detail: str) -> ReplicaState:
        """Keep ``state``; log when the replica starts or stops serving reads, once."""
        self._state = state
        if problem != self._problem:
            if problem is None:
                log.info("the read replica serves reads again")
            else:
                log.warning("the read replica is %s, the primary answers: %s", problem, detail)
            self._problem = problem
        if self.observer is not None:
            self.observer.replica_checked(state)
        return state

    def _discard_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
