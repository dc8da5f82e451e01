"""The SQLite backend (the default): one file, WAL, schema, batch insert, read, prune.

URL: ``sqlite://`` followed by the file's path (``sqlite:///var/lib/gateway/events.sqlite3`` is
absolute, ``sqlite://.gateway/events.sqlite3`` relative); a plain path means the same.

Durability: WAL journal with ``synchronous=FULL``. A transaction the writer has committed is in
the WAL file and fsynced before ``COMMIT`` returns, so it survives a ``kill -9`` of the gateway
(``NORMAL`` would already give that) and also an OS crash or power cut (what ``FULL`` adds). The
fsync is paid once per batch on the writer thread, never on a request.

Idempotency: ``id`` is UNIQUE and inserts are ``ON CONFLICT DO NOTHING``, so writing the same
event twice (a retried batch, a replay after a restart) stores it once. ``seq`` (the rowid) keeps
write order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson

from gateway.errors import ConfigError
from gateway.events.db import COLUMNS, backend
from gateway.events.event import Event

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    request_id TEXT NOT NULL,
    trace_id TEXT,
    principal TEXT NOT NULL,
    model TEXT NOT NULL,
    adapter TEXT,
    policy TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    stage TEXT NOT NULL,
    action TEXT NOT NULL,
    route_to TEXT,
    findings TEXT NOT NULL,
    messages TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
"""
_INSERT = (
    f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (id) DO NOTHING"
)


def stamp(when: datetime) -> str:
    """Fixed-width UTC text, so the ``time`` column sorts and compares as time (naive: UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@backend("sqlite")
def _open(url: str, create: bool) -> SQLiteEventDB:
    return SQLiteEventDB(Path(url.split("://", 1)[1]), create=create)


class SQLiteEventDB:
    """One connection to a SQLite store."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        if not create and not path.exists():
            raise ConfigError(f"no event store at {path}")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
            self._conn = sqlite3.connect(
                path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._conn.execute("PRAGMA synchronous=FULL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if create and version == 0:  # a new file: the only time opening needs to write
                self._conn.executescript(_SCHEMA)
                self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                version = SCHEMA_VERSION
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the event store {path}: {exc}") from None
        problem = (
            f"WAL journal not available (got {mode!r})"
            if mode != "wal"
            else f"schema version {version}, expected {SCHEMA_VERSION}"
            if version != SCHEMA_VERSION
            else None
        )
        if problem:
            self._conn.close()
            raise ConfigError(f"event store {path}: {problem}")
        self.path = path

    @property
    def name(self) -> str:
        return str(self.path)

    def insert(self, events: Iterable[Event]) -> int:
        rows = [_row(e) for e in events]
        before = self._conn.total_changes
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(_INSERT, rows)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return self._conn.total_changes - before

    def events(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[Event]:
        where, args = _window(since, until)
        query = f"SELECT {', '.join(COLUMNS)} FROM events{where} ORDER BY seq"
        for row in self._conn.execute(query, args):
            yield _event(row)

    def count(self) -> int:
        n: int = self._conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return n

    def prune(self, before: datetime) -> int:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._conn.execute("DELETE FROM events WHERE time < ?", (stamp(before),))
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return cursor.rowcount

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for an intact file."""
        result: str = self._conn.execute("PRAGMA integrity_check").fetchone()[0]
        return result

    def close(self) -> None:
        self._conn.close()


def _window(since: datetime | None, until: datetime | None) -> tuple[str, list[str]]:
    clauses, args = [], []
    if since is not None:
        clauses.append("time >= ?")
        args.append(stamp(since))
    if until is not None:
        clauses.append("time < ?")
        args.append(stamp(until))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _row(e: Event) -> tuple[object, ...]:
    data = e.model_dump(mode="json")
    data["time"] = stamp(e.time)
    data["findings"] = orjson.dumps(data["findings"]).decode()
    data["messages"] = orjson.dumps(data["messages"]).decode()
    return tuple(data[c] for c in COLUMNS)


def _event(row: tuple[object, ...]) -> Event:
    data = dict(zip(COLUMNS, row, strict=True))
    data["findings"] = orjson.loads(str(data["findings"]))
    data["messages"] = orjson.loads(str(data["messages"]))
    return Event.model_validate(data)
