"""The PostgreSQL backend: for several gateway replicas writing one store, or a store that must
outlive the pods. Chosen with ``GATEWAY_EVENTS_URL=postgresql://user:pass@host:5432/db`` (any
libpq URL: ``?sslmode=require``, ``?host=/run/postgresql`` for a socket,
``?options=-csearch_path=x`` for a schema).

Tables: ``gateway_events`` (one row per event) and ``gateway_events_schema`` (the schema version).
They are created on first open, under an advisory lock so replicas starting together do not race;
a database that has ``gateway_events`` but no version row is refused, as SQLite refuses a foreign
file. A reader (``create=False``, the CLI) needs no CREATE right and creates nothing.

Durability: every session sets ``synchronous_commit = on``, whatever the server's default, so
``COMMIT`` returns only once the commit record is flushed to the server's WAL: an acknowledged
event survives a ``kill -9`` of the gateway and a crash of the database server (an OS crash too,
unless the server runs with ``fsync = off``). One transaction per batch, on the writer thread.

Idempotency: ``id`` is the primary key and inserts are ``ON CONFLICT (id) DO NOTHING``. This
matters more here than for a local file: when the connection dies after the server committed but
before the answer arrived, the writer retries a batch that is already stored, and it is stored once.
``seq`` (an identity column) keeps write order for export.

Connection: ``connect_timeout`` defaults to 5 s and ``lock_timeout`` is 5 s, like SQLite's busy
timeout, so a lock held elsewhere fails the batch (the writer retries, then counts it) rather than
stalling the writer. A broken connection is reopened on the next write.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads

from gateway.errors import ConfigError
from gateway.events.db import COLUMNS, backend
from gateway.events.event import Event

SCHEMA_VERSION = 1
_TABLE = "gateway_events"
_LOCK_KEY = 0x6761_7465_7761_79  # "gateway": serialises schema creation across replicas
_SCHEMA = (
    f"""CREATE TABLE {_TABLE} (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    id text PRIMARY KEY,
    time timestamptz NOT NULL,
    request_id text NOT NULL,
    trace_id text,
    principal text NOT NULL,
    model text NOT NULL,
    adapter text,
    policy text NOT NULL,
    policy_version text NOT NULL,
    stage text NOT NULL,
    action text NOT NULL,
    route_to text,
    findings jsonb NOT NULL,
    messages jsonb NOT NULL
)""",
    f"CREATE UNIQUE INDEX {_TABLE}_seq ON {_TABLE} (seq)",
    f"CREATE INDEX {_TABLE}_time ON {_TABLE} (time)",
    f"CREATE TABLE {_TABLE}_schema (version integer NOT NULL)",
)
_INSERT = (
    f"INSERT INTO {_TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    "ON CONFLICT (id) DO NOTHING"
)
_SESSION = (
    "SET synchronous_commit = on",
    "SET TimeZone = 'UTC'",
    "SET lock_timeout = '5s'",
)
_DEFAULTS = {"connect_timeout": "5", "application_name": "guarded-gateway-events"}
_EXPORT_BATCH = 1000

Connection = psycopg.Connection[tuple[Any, ...]]


@backend("postgresql", "postgres")
def _open(url: str, create: bool) -> PostgresEventDB:
    return PostgresEventDB(url, create=create)


def safe_name(url: str) -> str:
    """The URL without its password (and without other parameters), for logs and errors."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://(unparseable URL)"
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    user = f"{info['user']}@" if info.get("user") else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname') or ''}"


class PostgresEventDB:
    """One connection to a PostgreSQL store (autocommit; transactions are explicit)."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        try:
            conninfo_to_dict(url)
        except psycopg.Error:  # its message quotes the URL, password and all
            raise ConfigError("the event store URL is not a valid PostgreSQL URL") from None
        self._url = url
        self._name = safe_name(url)
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            raise ConfigError(f"cannot open the event store {self._name}: {exc}") from None
        try:
            problem = self._check_schema(create)
        except psycopg.Error as exc:
            self._conn.close()
            raise ConfigError(f"cannot open the event store {self._name}: {exc}") from None
        if problem:
            self._conn.close()
            raise ConfigError(problem)

    @property
    def name(self) -> str:
        return self._name

    def insert(self, events: Iterable[Event]) -> int:
        rows = [_row(e) for e in events]
        conn = self._live()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_INSERT, rows)
            return max(cur.rowcount, 0)

    def events(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[Event]:
        where, args = _window(since, until)
        query = f"SELECT {', '.join(COLUMNS)} FROM {_TABLE}{where} ORDER BY seq"
        conn = self._live()
        # A server-side cursor streams a large export instead of loading it at once.
        with conn.transaction(), conn.cursor(name="gateway_events_export") as cur:
            cur.itersize = _EXPORT_BATCH
            cur.execute(query, args)
            for row in cur:
                yield _event(row)

    def count(self) -> int:
        row = self._live().execute(f"SELECT count(*) FROM {_TABLE}").fetchone()
        assert row is not None
        n: int = row[0]
        return n

    def prune(self, before: datetime) -> int:
        conn = self._live()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"DELETE FROM {_TABLE} WHERE time < %s", (_utc(before),))
            return cur.rowcount

    def close(self) -> None:
        self._conn.close()

    # --- connection and schema -------------------------------------------------------------

    def _connect(self) -> Connection:
        given = conninfo_to_dict(self._url)
        extra = {k: v for k, v in _DEFAULTS.items() if k not in given}
        conn = psycopg.connect(make_conninfo(self._url, **extra), autocommit=True)
        set_json_dumps(orjson.dumps, conn)
        set_json_loads(orjson.loads, conn)
        for statement in _SESSION:
            conn.execute(statement)  # constants, not user input
        return conn

    def _live(self) -> Connection:
        """The connection, reopened if it broke (the server restarted, the network dropped)."""
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    def _check_schema(self, create: bool) -> str | None:
        """Create the tables if asked and absent; the problem with what is there, if any."""
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            if self._relation(f"{_TABLE}_schema") is None:
                if not create:
                    return f"no event store at {self._name}"
                if self._relation(_TABLE) is not None:
                    return f"event store {self._name}: {_TABLE} exists but has no schema version"
                for statement in _SCHEMA:
                    self._conn.execute(statement)
                self._conn.execute(
                    f"INSERT INTO {_TABLE}_schema (version) VALUES (%s)",
                    (SCHEMA_VERSION,),
                )
            row = self._conn.execute(f"SELECT max(version) FROM {_TABLE}_schema").fetchone()
        version = row[0] if row is not None else None
        if version != SCHEMA_VERSION:
            return f"event store {self._name}: schema version {version}, expected {SCHEMA_VERSION}"
        return None

    def _relation(self, name: str) -> str | None:
        row = self._conn.execute("SELECT to_regclass(%s)::text", (name,)).fetchone()
        return row[0] if row is not None else None


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _window(since: datetime | None, until: datetime | None) -> tuple[str, list[datetime]]:
    clauses, args = [], []
    if since is not None:
        clauses.append("time >= %s")
        args.append(_utc(since))
    if until is not None:
        clauses.append("time < %s")
        args.append(_utc(until))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _row(e: Event) -> tuple[object, ...]:
    data = e.model_dump(mode="json")
    data["time"] = e.time
    data["findings"] = Jsonb(data["findings"])
    data["messages"] = Jsonb(data["messages"])
    return tuple(data[c] for c in COLUMNS)


def _event(row: tuple[Any, ...]) -> Event:
    return Event.model_validate(dict(zip(COLUMNS, row, strict=True)))
