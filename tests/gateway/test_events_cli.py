"""``gateway events export|prune`` against a real store: a SQLite file, and a database on a real
PostgreSQL server (``store_target``, tests/gateway/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.errors import ConfigError
from gateway.events import Event, open_db
from tests.gateway.events.helpers import event

runner = CliRunner()


@pytest.fixture
def store(store_target: str) -> str:
    db = open_db(store_target)
    now = datetime.now(UTC)
    db.insert([event(i, now - timedelta(days=10 * i)) for i in range(4)])  # 0, 10, 20, 30 days
    db.close()
    return store_target


def read_back(target: str) -> list[Event]:
    db = open_db(target, create=False)
    try:
        return list(db.events())
    finally:
        db.close()


def test_export_to_stdout_round_trips(store: str) -> None:
    result = runner.invoke(app, ["events", "export", "--db", store])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [Event.model_validate_json(line) for line in lines] == read_back(store)
    assert len(lines) == 4


def test_export_a_window_to_a_file(store: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    since = (datetime.now(UTC) - timedelta(days=25)).strftime("%Y-%m-%dT%H:%M:%S")
    result = runner.invoke(app, ["events", "export", "--db", store, "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["events", "export", "--db", store, "--out", str(out), "--since", since]
    )
    assert result.exit_code == 0, result.output
    exported = [Event.model_validate_json(line) for line in out.read_text("utf-8").splitlines()]
    assert [e.id for e in exported] == ["ev-0", "ev-1", "ev-2"]
    assert "exported 3 event(s)" in result.output


def test_prune_removes_what_is_past_retention(store: str) -> None:
    result = runner.invoke(app, ["events", "prune", "--db", store, "--older-than-days", "15"])
    assert result.exit_code == 0, result.output
    assert "pruned 2 event(s)" in result.output
    assert [e.id for e in read_back(store)] == ["ev-0", "ev-1"]


def test_export_and_prune_read_the_settings(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_EVENTS_URL" if "://" in store else "GATEWAY_EVENTS_PATH", store)
    result = runner.invoke(app, ["events", "export"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 4
    monkeypatch.setenv("GATEWAY_EVENTS_RETENTION_DAYS", "25")
    result = runner.invoke(app, ["events", "prune"])
    assert result.exit_code == 0, result.output
    assert [e.id for e in read_back(store)] == ["ev-0", "ev-1", "ev-2"]
    monkeypatch.setenv("GATEWAY_EVENTS_RETENTION_DAYS", "0")
    result = runner.invoke(app, ["events", "prune"])
    assert result.exit_code == 0 and "nothing pruned" in result.output
    assert len(read_back(store)) == 3


def test_a_missing_store_is_exit_2_and_is_not_created(store_target: str) -> None:
    result = runner.invoke(app, ["events", "export", "--db", store_target])
    assert result.exit_code == 2
    assert "no event store" in result.output
    with pytest.raises(ConfigError, match="no event store"):  # still not there
        open_db(store_target, create=False)


def test_an_unknown_scheme_is_exit_2_listing_the_known_ones() -> None:
    result = runner.invoke(app, ["events", "export", "--db", "mysql://u@db/events"])
    assert result.exit_code == 2
    assert "unknown event store scheme 'mysql'" in result.output
    assert "postgresql" in result.output and "sqlite" in result.output
