"""``gateway events export|prune`` against a real store file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.events import Event, EventDB
from tests.gateway.events.helpers import event

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "events.sqlite3"
    db = EventDB(path)
    now = datetime.now(UTC)
    db.insert([event(i, now - timedelta(days=10 * i)) for i in range(4)])  # 0, 10, 20, 30 days
    db.close()
    return path


def read_back(path: Path) -> list[Event]:
    db = EventDB(path, create=False)
    try:
        return list(db.events())
    finally:
        db.close()


def test_export_to_stdout_round_trips(store: Path) -> None:
    result = runner.invoke(app, ["events", "export", "--db", str(store)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [Event.model_validate_json(line) for line in lines] == read_back(store)
    assert len(lines) == 4


def test_export_a_window_to_a_file(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    since = (datetime.now(UTC) - timedelta(days=25)).strftime("%Y-%m-%dT%H:%M:%S")
    result = runner.invoke(app, ["events", "export", "--db", str(store), "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["events", "export", "--db", str(store), "--out", str(out), "--since", since]
    )
    assert result.exit_code == 0, result.output
    exported = [Event.model_validate_json(line) for line in out.read_text("utf-8").splitlines()]
    assert [e.id for e in exported] == ["ev-0", "ev-1", "ev-2"]
    assert "exported 3 event(s)" in result.output


def test_prune_removes_what_is_past_retention(store: Path) -> None:
    result = runner.invoke(app, ["events", "prune", "--db", str(store), "--older-than-days", "15"])
    assert result.exit_code == 0, result.output
    assert "pruned 2 event(s)" in result.output
    assert [e.id for e in read_back(store)] == ["ev-0", "ev-1"]


def test_prune_reads_the_settings(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_EVENTS_PATH", str(store))
    monkeypatch.setenv("GATEWAY_EVENTS_RETENTION_DAYS", "25")
    result = runner.invoke(app, ["events", "prune"])
    assert result.exit_code == 0, result.output
    assert [e.id for e in read_back(store)] == ["ev-0", "ev-1", "ev-2"]
    monkeypatch.setenv("GATEWAY_EVENTS_RETENTION_DAYS", "0")
    result = runner.invoke(app, ["events", "prune"])
    assert result.exit_code == 0 and "nothing pruned" in result.output
    assert len(read_back(store)) == 3


def test_a_missing_store_is_exit_2_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    result = runner.invoke(app, ["events", "export", "--db", str(missing)])
    assert result.exit_code == 2
    assert "no event store" in result.output
    assert not missing.exists()
