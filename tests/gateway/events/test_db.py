"""The SQLite store: WAL and full sync, idempotent inserts, time windows, pruning."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.events import EventDB
from tests.gateway.events.helpers import event


@pytest.fixture
def db(tmp_path: Path) -> Iterator[EventDB]:
    store = EventDB(tmp_path / "sub" / "events.sqlite3")
    yield store
    store.close()


def test_the_store_uses_wal_with_full_sync(db: EventDB) -> None:
    conn = sqlite3.connect(db.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert db._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_the_same_event_is_stored_once(db: EventDB) -> None:
    assert db.insert([event(1), event(2)]) == 2
    assert db.insert([event(2), event(3)]) == 1
    assert [e.id for e in db.events()] == ["ev-1", "ev-2", "ev-3"]
    assert list(db.events()) == [event(1), event(2), event(3)]


def test_events_within_a_window(db: EventDB) -> None:
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    db.insert([event(i, t0 + timedelta(hours=i)) for i in range(5)])
    window = db.events(t0 + timedelta(hours=1), t0 + timedelta(hours=3))
    assert [e.id for e in window] == ["ev-1", "ev-2"]


def test_prune_removes_only_older_events(db: EventDB) -> None:
    now = datetime.now(UTC)
    db.insert(
        [event(1, now - timedelta(days=40)), event(2, now - timedelta(days=2)), event(3, now)]
    )
    assert db.prune(now - timedelta(days=30)) == 1
    assert [e.id for e in db.events()] == ["ev-2", "ev-3"]


def test_reading_a_missing_store_fails_without_creating_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no event store"):
        EventDB(tmp_path / "nope.sqlite3", create=False)
    assert not (tmp_path / "nope.sqlite3").exists()


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version 0"):
        EventDB(path, create=False)
