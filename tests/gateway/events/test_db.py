"""The store on each backend: idempotent inserts, time windows, pruning, refusing what is not a
store; then what is particular to each (SQLite's WAL, PostgreSQL's session settings and
reconnects) and the registry of URL schemes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from gateway.errors import ConfigError
from gateway.events import EventDB, open_db, schemes
from gateway.events.postgres import PostgresEventDB
from gateway.events.sqlite import SQLiteEventDB
from tests.gateway.events.helpers import event
from tests.gateway.events.postgres_server import PostgresServer


@pytest.fixture
def db(store_target: str) -> Iterator[EventDB]:
    store = open_db(store_target)
    yield store
    store.close()


def test_the_same_event_is_stored_once(db: EventDB) -> None:
    assert db.insert([event(1), event(2)]) == 2
    assert db.insert([event(2), event(3)]) == 1
    assert [e.id for e in db.events()] == ["ev-1", "ev-2", "ev-3"]
    assert list(db.events()) == [event(1), event(2), event(3)]
    assert db.count() == 3


def test_events_read_back_as_they_were_written(db: EventDB) -> None:
    db.insert([event(1)])
    [back] = db.events()
    assert back.model_dump_json() == event(1).model_dump_json()  # time zone and all


def test_events_within_a_window(db: EventDB) -> None:
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    db.insert([event(i, t0 + timedelta(hours=i)) for i in range(5)])
    window = db.events(t0 + timedelta(hours=1), t0 + timedelta(hours=3))
    assert [e.id for e in window] == ["ev-1", "ev-2"]
    naive = db.events(datetime(2025, 3, 1, 3))  # naive times are UTC
    assert [e.id for e in naive] == ["ev-3", "ev-4"]


def test_prune_removes_only_older_events(db: EventDB) -> None:
    now = datetime.now(UTC)
    db.insert(
        [event(1, now - timedelta(days=40)), event(2, now - timedelta(days=2)), event(3, now)]
    )
    assert db.prune(now - timedelta(days=30)) == 1
    assert [e.id for e in db.events()] == ["ev-2", "ev-3"]


def test_a_reopened_store_keeps_its_events(store_target: str) -> None:
    first = open_db(store_target)
    first.insert([event(1)])
    first.close()
    again = open_db(store_target)
    try:
        assert again.insert([event(1), event(2)]) == 1
        assert again.count() == 2
    finally:
        again.close()


def test_reading_a_missing_store_fails_without_creating_it(store_target: str) -> None:
    with pytest.raises(ConfigError, match="no event store"):
        open_db(store_target, create=False)
    if "://" in store_target:
        with psycopg.connect(store_target) as conn:
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert tables.fetchone() == (0,)
    else:
        assert not Path(store_target).exists()


# --- SQLite -------------------------------------------------------------------------------------


def test_sqlite_uses_wal_with_full_sync(tmp_path: Path) -> None:
    db = SQLiteEventDB(tmp_path / "sub" / "events.sqlite3")
    try:
        conn = sqlite3.connect(db.path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()
        assert db._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        db.close()


def test_sqlite_refuses_a_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version 0"):
        open_db(path, create=False)


def test_a_sqlite_url_names_a_file(tmp_path: Path) -> None:
    path = tmp_path / "by-url.sqlite3"
    db = open_db(f"sqlite://{path}")
    try:
        assert isinstance(db, SQLiteEventDB) and db.path == path
        db.insert([event(1)])
    finally:
        db.close()
    again = open_db(path, create=False)
    try:
        assert [e.id for e in again.events()] == ["ev-1"]
    finally:
        again.close()


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()


def test_postgres_commits_synchronously_in_utc_whatever_the_server_default(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        dbname = admin.info.dbname
        admin.execute(f"ALTER DATABASE {dbname} SET synchronous_commit = off")
        admin.execute(f"ALTER DATABASE {dbname} SET TimeZone = 'Asia/Tokyo'")
    db = PostgresEventDB(pg_url)
    try:
        settings = db._conn.execute("SELECT current_setting('synchronous_commit'), now()::text")
        sync, now = settings.fetchone() or ("", "")
        assert sync == "on" and now.endswith("+00")
        db.insert([event(1)])
        [back] = db.events()
        assert back.model_dump_json() == event(1).model_dump_json()
    finally:
        db.close()


def test_postgres_refuses_a_foreign_table_of_the_same_name(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE gateway_events (x int)")
    with pytest.raises(ConfigError, match="no schema version"):
        open_db(pg_url)
    with pytest.raises(ConfigError, match="no event store"):
        open_db(pg_url, create=False)


def test_postgres_reconnects_after_losing_its_connection(pg_url: str) -> None:
    db = PostgresEventDB(pg_url)
    try:
        db.insert([event(1)])
        pid = db._conn.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            db.insert([event(2)])  # this batch fails: the writer would retry it
        assert db.insert([event(2)]) == 1  # and the retry goes through on a new connection
        assert db._conn.info.backend_pid != pid
        assert [e.id for e in db.events()] == ["ev-1", "ev-2"]
    finally:
        db.close()


def test_a_postgres_error_never_shows_the_password(postgres_server: PostgresServer) -> None:
    where = f"host={postgres_server.dir}&port={postgres_server.port}"
    url = f"postgresql://postgres:hunter2secret@/nosuchdb?{where}"
    with pytest.raises(ConfigError) as caught:
        open_db(url)
    assert "nosuchdb" in caught.value.message
    assert "hunter2secret" not in caught.value.message
    with pytest.raises(ConfigError) as caught:
        open_db("postgresql://postgres:hunter2secret@[::1/events")  # libpq quotes bad URLs
    assert "not a valid PostgreSQL URL" in caught.value.message
    assert "hunter2secret" not in caught.value.message


# --- the registry -------------------------------------------------------------------------------


def test_an_unknown_scheme_fails_listing_the_known_ones() -> None:
    assert {"sqlite", "postgresql", "postgres"} <= set(schemes())
    with pytest.raises(
        ConfigError, match=r"unknown event store scheme 'mysql'; known: .*postgresql"
    ):
        open_db("mysql://u:p@db/events")
