"""SQLite persistence of the sandbox (stdlib `sqlite3`): a separate sandbox process keeps its accounts,
charges and pending settlements across restarts, of itself or of Tiergate.

Objects are JSON documents (the API's own representation) in one table, with the columns that are
looked up beside them. Every call runs on the event loop's thread and is short (a local file, a few rows),
so a plain connection does: one writer, no awaits inside a transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    customer TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_by_customer ON objects (account_id, kind, customer);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    account_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    object_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE TABLE IF NOT EXISTS clocks (
    account_id TEXT NOT NULL,
    ref TEXT NOT NULL,
    now_us INTEGER NOT NULL,
    PRIMARY KEY (account_id, ref)
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    clock_ref TEXT NOT NULL,  -- '' = the sandbox's wall clock
    due_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (clock_ref, done, due_us);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL,  -- wall time (unix seconds) of the next delivery attempt; NULL = settled
    delivered_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS events_due ON events (next_attempt);
"""


def _document(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    document: dict[str, Any] = json.loads(row["data"])
    return document


class Store:
    def __init__(self, path: str = ":memory:") -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        if path != ":memory:":
            # WAL + synchronous=NORMAL: a killed process loses nothing committed; only a power cut
            # may lose the last transactions (a sandbox, not a bank).
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; nested blocks join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    # accounts
    def add_account(self, account: dict[str, Any], key_hash: str) -> None:
        self._db.execute(
            "INSERT INTO accounts (id, key_hash, data) VALUES (?, ?, ?)",
            (account["id"], key_hash, json.dumps(account)),
        )

    def save_account(self, account: dict[str, Any]) -> None:
        self._db.execute("UPDATE accounts SET data = ? WHERE id = ?", (json.dumps(account), account["id"]))

    def account_by_key(self, key_hash: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT data FROM accounts WHERE key_hash = ?", (key_hash,)).fetchone()
        return _document(row)

    def account(self, account_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT data FROM accounts WHERE id = ?", (account_id,)).fetchone()
        return _document(row)

    # objects (customers, payment methods, payments, refunds, setup sessions)
    def put(self, account_id: str, obj: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO objects (id, account_id, kind, customer, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (obj["id"], account_id, obj["object"], obj.get("customer"), json.dumps(obj)),
        )

    def get(self, account_id: str | None, kind: str, object_id: str) -> dict[str, Any] | None:
        """The object, if it is of `kind` and (unless `account_id` is None) of that account."""
        row = self._db.execute(
            "SELECT account_id, data FROM objects WHERE id = ? AND kind = ?", (object_id, kind)
        ).fetchone()
        if row is None or (account_id is not None and row["account_id"] != account_id):
            return None
        return _document(row)

    def owner(self, object_id: str) -> str | None:
        row = self._db.execute("SELECT account_id FROM objects WHERE id = ?", (object_id,)).fetchone()
        return row["account_id"] if row else None

    def list_objects(self, account_id: str, kind: str, customer: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT data FROM objects WHERE account_id = ? AND kind = ?", [account_id, kind]
        if customer is not None:
            sql += " AND customer = ?"
            args.append(customer)
        return [json.loads(r["data"]) for r in self._db.execute(sql + " ORDER BY id", args)]

    # idempotency keys: (account, key) → the object the first request created
    def remembered(self, account_id: str, key: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(
            "SELECT request_hash, object_id, status FROM idempotency_keys WHERE account_id = ? AND key = ?",
            (account_id, key),
        ).fetchone()
        return row

    def remember(self, account_id: str, key: str, request_hash: str, object_id: str, status: int) -> None:
        self._db.execute(
            "INSERT INTO idempotency_keys (account_id, key, request_hash, object_id, status) "
            "VALUES (?, ?, ?, ?, ?)",
            (account_id, key, request_hash, object_id, status),
        )

    # clocks: the time each (account, clock_ref) has reached, in microseconds since the epoch
    def clock(self, account_id: str, ref: str) -> int | None:
        row = self._db.execute(
            "SELECT now_us FROM clocks WHERE account_id = ? AND ref = ?", (account_id, ref)
        ).fetchone()
        return int(row["now_us"]) if row else None

    def set_clock(self, account_id: str, ref: str, now_us: int) -> None:
        self._db.execute(
            "INSERT INTO clocks (account_id, ref, now_us) VALUES (?, ?, ?) "
            "ON CONFLICT (account_id, ref) DO UPDATE SET now_us = excluded.now_us",
            (account_id, ref, now_us),
        )

    # jobs: what falls due on a clock (settlements, chargebacks, account-updater notices)
    def add_job(self, account_id: str, clock_ref: str, due_us: int, kind: str, object_id: str) -> None:
        self._db.execute(
            "INSERT INTO jobs (account_id, clock_ref, due_us, kind, object_id) VALUES (?, ?, ?, ?, ?)",
            (account_id, clock_ref, due_us, kind, object_id),
        )

    def next_due_job(self, account_id: str | None, clock_ref: str, until_us: int) -> sqlite3.Row | None:
        """The earliest job due by `until_us` on that clock (any account's, for the wall clock)."""
        sql = "SELECT * FROM jobs WHERE clock_ref = ? AND done = 0 AND due_us <= ?"
        args: list[Any] = [clock_ref, until_us]
        if account_id is not None:
            sql += " AND account_id = ?"
            args.append(account_id)
        row: sqlite3.Row | None = self._db.execute(sql + " ORDER BY due_us, seq LIMIT 1", args).fetchone()
        return row

    def finish_job(self, seq: int) -> None:
        self._db.execute("UPDATE jobs SET done = 1 WHERE seq = ?", (seq,))

    def pending_jobs(self, account_id: str, clock_ref: str) -> int:
        row = self._db.execute(
            "SELECT count(*) AS n FROM jobs WHERE account_id = ? AND clock_ref = ? AND done = 0",
            (account_id, clock_ref),
        ).fetchone()
        return int(row["n"])

    # events: webhooks to deliver, retried until delivered or out of attempts
    def add_event(self, event: dict[str, Any], account_id: str, first_attempt: float) -> None:
        self._db.execute(
            "INSERT INTO events (id, account_id, type, body, next_attempt) VALUES (?, ?, ?, ?, ?)",
            (event["id"], account_id, event["type"], json.dumps(event, separators=(",", ":")), first_attempt),
        )

    def due_events(self, now: float, limit: int = 100) -> list[sqlite3.Row]:
        return list(
            self._db.execute(
                "SELECT seq, id, account_id, body, attempts FROM events "
                "WHERE next_attempt IS NOT NULL AND next_attempt <= ? ORDER BY seq LIMIT ?",
                (now, limit),
            )
        )

    def event_delivered(self, seq: int, at: float) -> None:
        self._db.execute(
            "UPDATE events SET attempts = attempts + 1, next_attempt = NULL, delivered_at = ?, "
            "last_error = NULL WHERE seq = ?",
            (at, seq),
        )

    def event_failed(self, seq: int, error: str, next_attempt: float | None) -> None:
        self._db.execute(
            "UPDATE events SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE seq = ?",
            (next_attempt, error[:500], seq),
        )

    def events(self, account_id: str, limit: int = 100) -> list[sqlite3.Row]:
        return list(
            self._db.execute(
                "SELECT id, type, body, attempts, next_attempt, delivered_at, last_error FROM events "
                "WHERE account_id = ? ORDER BY seq DESC LIMIT ?",
                (account_id, limit),
            )
        )
