"""The change stream: the one way to read the outbox so that no committed event is ever skipped.

Every consumer of the outbox (the decision engine and the revocation list of each replica, the relay's
consumers: provisioning, metrics, audit, webhooks, and any later one) reads through this module.

The problem. On PostgreSQL an event's `seq` is taken when the row is inserted, not when its transaction
commits. A transaction that inserts seq 52 and commits after seq 53..20,052 have committed makes seq 52
appear *below* everything a reader has already seen. A reader that only looks above its watermark, or a
fixed number of seqs below it, loses such an event for good (issue 16: a plan change held during a busy
billing run never reached the index or the relay).

The design: a *safe horizon* per reader, and a receipt per event read above it.

* Each outbox row carries the id of the transaction that wrote it (`outbox.xid`, server default
  `pg_current_xact_id()`). The horizon is `pg_snapshot_xmin(pg_current_snapshot())`: every transaction
  with a smaller id has ended (committed or rolled back), so the set of committed rows with
  `xid < horizon` is final; it can never grow again.
* A reader keeps (its horizon `h`, the events it has read whose `xid >= h`). Each pass it first measures
  the horizon `H`, then reads every visible event with `xid >= h` it has not read yet, in `seq` order.
  Those are delivered at once: a late commit is visible (and delivered) the moment it commits, so the
  latency is the poll or nudge, never the age of the oldest transaction.
* If the pass read everything it found, every committed row with `xid < H` has now been read (they were
  all committed before `H` was measured, so visible to the read that followed), and `h` moves to `H`;
  the receipts of rows below it can be forgotten, because no query will ask about them again.

Why not "read by `seq` up to the horizon"? A `seq` bound would need the lowest seq a still-running
transaction holds, which no snapshot can see; and ordering by `(xid, seq)` instead breaks the order per
aggregate (a transaction with an older id can write an aggregate after a younger one committed it).
Reading every visible unread event in `seq` order keeps that order: when an event of an aggregate is
visible, every earlier event of it (written by a transaction that held the aggregate's row lock before)
has committed too, so it is read in the same pass or an earlier one, and sorts first.

What a very long transaction costs. It holds the horizon back, never the stream: events committed after
it are still delivered at once, but every pass re-reads the keys of all events committed since the
horizon stopped moving (and in-memory readers remember them) until it ends. Nothing is lost however long
it stays open; when it commits, its events are read like any other. `HorizonWatch` logs a warning when
the horizon has stood still for longer than `outbox_horizon_warn_seconds` while events wait on it. Note
that the horizon is cluster-wide: a long writing transaction in another database holds it back too.

The in-memory readers (`OutboxTail`) go one step further: instead of the horizon they keep the whole
snapshot of their last complete pass (its `xmax` and the ids still running), so a pass reads only the
rows of transactions that have ended since, and a long transaction costs them nothing per pass.

SQLite has one writer at a time and assigns `seq` as the next rowid inside it, so `seq` order is commit
order; there the stream key is `seq` itself and the horizon is the highest committed `seq` + 1. The
same algorithm runs unchanged on both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from gateway.db.outbox import OutboxEvent

log = logging.getLogger("tiergate.stream")

DEFAULT_WARN_AFTER_SECONDS = 60.0

_PG_HORIZON = text("SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def stream_key(session: AsyncSession) -> InstrumentedAttribute[Any]:
    """The column the horizon is compared with: the writing transaction on PostgreSQL, `seq` on SQLite."""
    return OutboxEvent.xid if _dialect(session) == "postgresql" else OutboxEvent.seq


async def safe_horizon(session: AsyncSession) -> int:
    """A key below which the set of committed outbox rows is final. Measure it *before* reading: the
    reads that follow then see every committed row below it."""
    if _dialect(session) == "postgresql":
        return int((await session.execute(_PG_HORIZON)).scalar_one())
    top = await session.scalar(select(func.coalesce(func.max(OutboxEvent.seq), 0)))
    return int(top or 0) + 1


def unsettled(session: AsyncSession, horizon: int) -> ColumnElement[bool]:
    """The rows a reader standing at `horizon` must still look at."""
    return stream_key(session) >= horizon


async def settle(session: AsyncSession, horizon: int, measured: int, unread: ColumnElement[bool]) -> int:
    """How far a reader at `horizon` may move after a pass that started by measuring `measured`: up to the
    oldest key among rows it has still not read (`unread`, e.g. no receipt), at most to `measured`."""
    if measured <= horizon:
        return horizon
    key = stream_key(session)
    oldest_unread = await session.scalar(select(func.min(key)).where(key >= horizon, key < measured, unread))
    return measured if oldest_unread is None else max(horizon, int(oldest_unread))


async def top_seq(session: AsyncSession) -> int:
    """The highest seq committed so far: the position replicas report (`index_version`)."""
    return int(await session.scalar(select(func.coalesce(func.max(OutboxEvent.seq), 0))) or 0)


class HorizonWatch:
    """Warns (at most once per `warn_after_seconds`) when a reader's horizon has stood still that long
    while committed events wait above it: a transaction left open somewhere is holding the stream's
    bookkeeping back (not its delivery)."""

    def __init__(self, name: str, warn_after_seconds: float = DEFAULT_WARN_AFTER_SECONDS) -> None:
        self.name = name
        self.warn_after_seconds = warn_after_seconds
        self._horizon: int | None = None
        self._since = time.monotonic()
        self._warned_at: float | None = None
        self.warnings = 0

    def held_for(self) -> float:
        return time.monotonic() - self._since

    async def observe(self, session: AsyncSession, horizon: int) -> None:
        now = time.monotonic()
        if horizon != self._horizon:
            self._horizon, self._since, self._warned_at = horizon, now, None
            return
        if now - self._since < self.warn_after_seconds:
            return
        if self._warned_at is not None and now - self._warned_at < self.warn_after_seconds:
            return
        key = stream_key(session)
        waiting = int(await session.scalar(select(func.count()).where(key >= horizon)) or 0)
        if not waiting:
            return
        self._warned_at = now
        self.warnings += 1
        log.warning(
            "%s: the outbox horizon has been held at transaction %s for %.0f s by a transaction that is "
            "still open; %d committed events above it are delivered but re-read every pass until it ends "
            "(find it: SELECT pid, xact_start, query FROM pg_stat_activity WHERE backend_xid = '%s')",
            self.name,
            horizon,
            now - self._since,
            waiting,
            horizon & 0xFFFFFFFF,
        )


_WATCHES: dict[str, HorizonWatch] = {}


def horizon_watch(name: str, warn_after_seconds: float = DEFAULT_WARN_AFTER_SECONDS) -> HorizonWatch:
    """One watch per reader name per process, so readers rebuilt per pass (the relay job) keep theirs."""
    watch = _WATCHES.get(name)
    if watch is None:
        watch = _WATCHES[name] = HorizonWatch(name, warn_after_seconds)
    watch.warn_after_seconds = warn_after_seconds
    return watch


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Which writing transactions had ended when it was taken (PostgreSQL's `pg_current_snapshot()`): every
    id below `xmin`, and every id below `xmax` except the ones `running`. On SQLite (one writer, `seq` in
    commit order) it is just "every seq up to the highest committed": `xmin == xmax`, nothing running."""

    xmin: int
    xmax: int
    running: tuple[int, ...] = ()

    def ended(self, key: int) -> bool:
        return key < self.xmax and key not in self.running


_PG_SNAPSHOT = text(
    "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint,"
    " ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x) FROM pg_current_snapshot() AS s"
)


async def current_snapshot(session: AsyncSession) -> Snapshot:
    """Measure it *before* reading: the reads that follow see every row its ended transactions wrote."""
    if _dialect(session) == "postgresql":
        xmin, xmax, running = (await session.execute(_PG_SNAPSHOT)).one()
        return Snapshot(int(xmin), int(xmax), tuple(int(x) for x in running))
    top = await top_seq(session)
    return Snapshot(top + 1, top + 1)


def not_ended_at(session: AsyncSession, snapshot: Snapshot) -> ColumnElement[bool]:
    """The rows written by transactions that had not ended at `snapshot`: the only ones a reader that read
    everything visible right after it can still be missing."""
    key = stream_key(session)
    if not snapshot.running:
        return key >= snapshot.xmax
    return or_(key >= snapshot.xmax, key.in_(snapshot.running))


@dataclass(frozen=True, slots=True)
class TailBatch:
    """Events one `OutboxTail.read` found, not yet acknowledged. `rows` are (seq, key, *columns)."""

    rows: list[Any]  # sqlalchemy Rows
    measured: Snapshot
    complete: bool

    @property
    def seqs(self) -> list[int]:
        return [row[0] for row in self.rows]


@dataclass
class OutboxTail:
    """An in-memory reader of the stream (each replica's decision engine and revocation list).

    `read` returns the unread events in `seq` order; `acknowledge` marks them read once the caller has
    applied them (a caller that fails before that gets the same events again).

    Unlike the relay (whose state is rows in the database, so it keeps just a horizon), this reader keeps
    the whole snapshot of its last complete pass, `since`. A row it has not read yet can only come from a
    transaction that had not ended at `since` (any other one committed before that pass read, so the pass
    saw its rows): an id at or above `since.xmax`, or one of the few `since.running`. So a pass reads the
    keys of those rows only, and a transaction held open for minutes costs nothing per pass, where a
    horizon-bounded read would re-read every event committed since it began (issue 16's experiment: 22,500
    keys a pass, seconds on a loaded machine)."""

    name: str
    where: Sequence[ColumnElement[bool]] = ()
    watch: HorizonWatch | None = None
    since: Snapshot = field(default_factory=lambda: Snapshot(0, 0))
    # seq → stream key of every event read that a pass could find again (its transaction had not ended
    # at `since`).
    seen: dict[int, int] = field(default_factory=dict)
    top: int = 0  # the highest seq read
    keys_read: int = 0  # keys the last pass looked at (what a held transaction would inflate)

    async def start(self, session: AsyncSession) -> int:
        """Stand at "now": everything committed so far counts as read (the caller loads the state it
        reflects *after* this). Returns the highest committed seq."""
        measured = await current_snapshot(session)
        key = stream_key(session)
        rows = (
            await session.execute(
                select(OutboxEvent.seq, key).where(not_ended_at(session, measured), *self.where)
            )
        ).all()
        self.since = measured
        self.seen = {int(seq): int(k) for seq, k in rows}
        self.top = max(await top_seq(session), max(self.seen, default=0))
        return self.top

    async def read(self, session: AsyncSession, *columns: Any, limit: int | None = None) -> TailBatch:
        measured = await current_snapshot(session)
        key = stream_key(session)
        where = [not_ended_at(session, self.since), *self.where]
        if not self.since.running and measured.xmax <= self.since.xmax:
            # No transaction id has been handed out since the last complete pass (on SQLite: nothing
            # committed since), and none was running then: no row can be unread. The idle poll's case,
            # every second on every replica: one query instead of two.
            candidates: Sequence[int] = ()
        else:
            # Keys first (narrow), then the columns of the unread ones only.
            candidates = (await session.execute(select(OutboxEvent.seq).where(*where))).scalars().all()
        self.keys_read = len(candidates)
        unread = sorted(seq for seq in candidates if seq not in self.seen)
        complete = limit is None or len(unread) <= limit
        if limit is not None:
            unread = unread[:limit]
        rows: list[Any] = []
        if unread:
            wanted = set(unread)
            query = (
                select(OutboxEvent.seq, key, *columns)
                .where(*where, OutboxEvent.seq >= unread[0], OutboxEvent.seq <= unread[-1])
                .order_by(OutboxEvent.seq)
            )
            rows = [row for row in (await session.execute(query)).all() if row[0] in wanted]
        if self.watch is not None:
            await self.watch.observe(session, measured.xmin)
        return TailBatch(rows, measured, complete)

    def acknowledge(self, batch: TailBatch) -> None:
        for row in batch.rows:
            self.seen[int(row[0])] = int(row[1])
        self.top = max([self.top, *batch.seqs])
        if batch.complete:
            # Everything visible after `measured` has been read: only transactions still running then can
            # add rows below its xmax, so the receipts of every other one can go.
            self.since = batch.measured
            self.seen = {seq: k for seq, k in self.seen.items() if not batch.measured.ended(k)}


def horizon_watches() -> dict[str, HorizonWatch]:
    """This process's watches by reader name (for /metrics)."""
    return dict(_WATCHES)
