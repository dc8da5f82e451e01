"""``gateway events export|prune``: read the event store of blocked traffic while the gateway
writes it (SQLite's WAL, and PostgreSQL, let readers and the writer work at once).

The store is the gateway's own (``GATEWAY_EVENTS_URL``, else ``GATEWAY_EVENTS_PATH``) unless
``--db`` names another: a SQLite file's path or a URL. Prefer the environment variable for a
PostgreSQL URL with a password: a command line is visible to every user of the machine.

Exit codes: 0 done; 2 no store where pointed, or a bad setting.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from gateway.errors import ConfigError
from gateway.events import EventDB, events_target, open_db

if TYPE_CHECKING:
    from gateway.settings import Settings

events_app = typer.Typer(
    help="Export and prune the event store of blocked traffic.", no_args_is_help=True
)

Store = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="a SQLite file or a postgresql:// URL "
        "(default: GATEWAY_EVENTS_URL, else GATEWAY_EVENTS_PATH)",
    ),
]
When = Annotated[datetime | None, typer.Option(help="UTC unless an offset is given")]
Out = Annotated[Path | None, typer.Option("--out", help="file to write (default: stdout)")]
Days = Annotated[
    int | None,
    typer.Option(min=0, help="delete older events (default: GATEWAY_EVENTS_RETENTION_DAYS)"),
]


@events_app.command()
def export(db: Store = None, out: Out = None, since: When = None, until: When = None) -> None:
    """Write stored events as JSON Lines, oldest first, one event per line."""
    store = _open(db)
    n = 0
    with contextlib.closing(store), contextlib.ExitStack() as stack:
        sink: TextIO = (
            stack.enter_context(out.open("w", encoding="utf-8")) if out is not None else sys.stdout
        )
        for event in store.events(since, until):
            sink.write(event.model_dump_json() + "\n")
            n += 1
    if out is not None:
        typer.echo(f"exported {n} event(s) to {out}", err=True)


@events_app.command()
def prune(db: Store = None, older_than_days: Days = None) -> None:
    """Delete events older than the retention period (0: keep forever, nothing to do)."""
    days = older_than_days if older_than_days is not None else _settings().events_retention_days
    if days == 0:
        typer.echo("retention is 0 (keep forever): nothing pruned", err=True)
        return
    with contextlib.closing(_open(db)) as store:
        removed = store.prune(datetime.now(UTC) - timedelta(days=days))
    typer.echo(f"pruned {removed} event(s) older than {days} day(s)")


def _open(db: str | None) -> EventDB:
    try:
        return open_db(db if db is not None else events_target(_settings()), create=False)
    except ConfigError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(2) from None


def _settings() -> Settings:
    from gateway.settings import load_settings

    try:
        return load_settings()
    except (ConfigError, ValueError) as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
