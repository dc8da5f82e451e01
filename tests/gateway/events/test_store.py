"""record() never waits; the writer commits in batches; what it committed survives kill -9.
Each test runs on both backends (``store_target``: SQLite, and a real PostgreSQL server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.events import Event, EventDB, EventStore, open_db
from gateway.events.sqlite import SQLiteEventDB
from gateway.metrics import Metrics
from tests.gateway.events.helpers import SECRET, checked, context, event, policy

REPO = Path(__file__).resolve().parents[3]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None
    return value


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def store(store_target: str, metrics: Metrics) -> Iterator[EventStore]:
    s = EventStore(store_target, metrics, queue_size=4)
    yield s
    s.close()


def stored(target: str) -> list[str]:
    db = open_db(target, create=False)
    try:
        return [e.request_id for e in db.events()]
    finally:
        db.close()


def test_allowed_verdicts_are_not_recorded(store: EventStore) -> None:
    pol = policy()
    assert not store.record(checked("hello there", pol), context(), pol)
    assert store._queue.qsize() == 0


def test_a_full_queue_drops_counts_and_never_waits(
    store: EventStore, metrics: Metrics, store_target: str
) -> None:
    pol = policy()
    result = checked(f"key {SECRET}", pol)
    # The writer is not started, so nothing drains: the 5th and 6th events find the queue full.
    accepted = [store.record(result, context(f"req-{i}"), pol) for i in range(6)]
    assert accepted == [True] * 4 + [False] * 2
    assert sample(metrics, "gateway_events_dropped_total", reason="queue_full") == 2
    assert sample(metrics, "gateway_event_queue_depth") == 4
    store.start()
    store.close()  # writes what was queued
    assert stored(store_target) == ["req-0", "req-1", "req-2", "req-3"]
    assert sample(metrics, "gateway_events_written_total") == 4
    assert sample(metrics, "gateway_event_queue_depth") == 0
    assert not store.record(result, context("late"), pol)
    assert sample(metrics, "gateway_events_dropped_total", reason="closed") == 1


def test_a_failing_write_is_retried_then_counted_and_the_writer_goes_on(
    store: EventStore, metrics: Metrics, monkeypatch: pytest.MonkeyPatch, store_target: str
) -> None:
    monkeypatch.setattr("gateway.events.store._RETRIES", (0.0, 0.0))
    failures = {"left": 2}

    def flaky_open(target: str) -> EventDB:
        db = open_db(target)
        real_insert = db.insert

        def insert(events: Iterable[Event]) -> int:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise OSError("disk I/O error")
            return real_insert(events)

        db.insert = insert  # type: ignore[method-assign]
        return db

    monkeypatch.setattr("gateway.events.store.open_db", flaky_open)
    pol = policy()
    result = checked(f"key {SECRET}", pol)
    store.start()
    store.record(result, context("retried"), pol)
    store.flush()
    assert sample(metrics, "gateway_events_written_total") == 1  # third try
    failures["left"] = 10
    store.record(result, context("lost"), pol)
    store.flush()
    assert sample(metrics, "gateway_events_dropped_total", reason="write_failed") == 1
    failures["left"] = 0
    store.record(result, context("after"), pol)
    store.close()
    assert stored(store_target) == ["retried", "after"]


def test_the_writer_prunes_past_retention(store_target: str, metrics: Metrics) -> None:
    db = open_db(store_target)
    now = datetime.now(UTC)
    db.insert([event(1, now - timedelta(days=8)), event(2, now - timedelta(days=1))])
    db.close()
    store = EventStore(store_target, metrics, retention_days=7)
    store.start()
    store.close()
    assert stored(store_target) == ["req-2"]


CHILD = """
import sys
from pathlib import Path
from gateway.events import EventStore
from gateway.metrics import Metrics
from tests.gateway.events.helpers import SECRET, checked, context, policy

pol = policy()
result = checked("key " + SECRET, pol)
store = EventStore(sys.argv[1], Metrics(), queue_size=1_000_000, batch_size=50)
store.start()
for i in range(200):
    store.record(result, context(f"acked-{i}"), pol)
store.flush()
print("acknowledged", flush=True)
i = 0
while True:  # keep the writer committing until the parent kills us
    store.record(result, context(f"busy-{i}"), pol)
    i += 1
"""


def test_committed_events_survive_kill_9_and_are_never_written_twice(store_target: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, store_target],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        lines = (line.strip() for line in child.stdout)  # the child may log before it
        assert "acknowledged" in lines
        db = open_db(store_target, create=False)  # let the writer commit some unacknowledged events
        deadline = time.monotonic() + 20
        while db.count() < 400 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        db.close()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()  # type: ignore[union-attr]
    assert child.returncode == -signal.SIGKILL

    db = open_db(store_target)  # reopen as the restarted gateway would
    try:
        if isinstance(db, SQLiteEventDB):
            assert db.integrity_check() == "ok"
        events = list(db.events())
        ids = [e.request_id for e in events]
        assert {f"acked-{i}" for i in range(200)} <= set(ids)
        assert len(ids) >= 400
        assert all(SECRET not in e.model_dump_json() for e in events)
        assert db.insert(events) == 0  # replayed after the restart: nothing written twice
        assert db.count() == len(events)
    finally:
        db.close()
