"""The database behind the event store: one small protocol, a backend per URL scheme.

A store is named by a *target*: a URL whose scheme picks the backend
(``postgresql://user:pass@host:5432/db`` for :mod:`gateway.events.postgres`, ``sqlite:///abs/path``
for :mod:`gateway.events.sqlite`), or a plain file path, which is SQLite (the default). An unknown
scheme fails at open and lists the known ones.

Every backend keeps the same promises, which the shared tests check on each of them:

- ``insert`` writes a batch in one transaction and returns only once it is durable (committed and
  flushed to stable storage): what it returned for is *acknowledged* and survives a ``kill -9``;
- inserting an event whose ``id`` is already stored does nothing (``ON CONFLICT DO NOTHING``), so a
  batch retried after a lost acknowledgement, or replayed after a restart, is stored once;
- ``events`` reads in write order within ``[since, until)``, while a writer is writing;
- ``prune`` deletes what is older than a time;
- opening with ``create=False`` never creates anything: a missing store is a ConfigError, and so
  is a database that is not an event store of this schema version.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

from gateway.errors import ConfigError
from gateway.events.event import Event

COLUMNS = (
    "id",
    "time",
    "request_id",
    "trace_id",
    "principal",
    "model",
    "adapter",
    "policy",
    "policy_version",
    "stage",
    "action",
    "route_to",
    "findings",
    "messages",
)


class EventDB(Protocol):
    """One connection to a store. Not thread-safe: one owner (the writer, a CLI) at a time."""

    @property
    def name(self) -> str:
        """Where the store is, fit for logs and errors (never a password)."""
        ...

    def insert(self, events: Iterable[Event]) -> int:
        """Write events in one durable transaction; return how many were new."""
        ...

    def events(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[Event]:
        """Stored events in write order, optionally within [since, until)."""
        ...

    def count(self) -> int: ...

    def prune(self, before: datetime) -> int:
        """Delete events older than ``before``; return how many."""
        ...

    def close(self) -> None: ...


Opener = Callable[[str, bool], EventDB]
"""``opener(url, create)``: a backend's way in, given the whole URL."""

_BACKENDS: dict[str, Opener] = {}
_BUILTINS = ("gateway.events.sqlite", "gateway.events.postgres")


def backend(*schemes: str) -> Callable[[Opener], Opener]:
    """Register an opener for URL schemes (``@backend("postgresql", "postgres")``)."""

    def add(opener: Opener) -> Opener:
        for scheme in schemes:
            if scheme in _BACKENDS:
                raise ValueError(f"event store scheme {scheme!r} is already registered")
            _BACKENDS[scheme] = opener
        return opener

    return add


def schemes() -> list[str]:
    _load_builtins()
    return sorted(_BACKENDS)


def open_db(target: str | Path, *, create: bool = True) -> EventDB:
    """Open the store at ``target`` (a URL, or a path to a SQLite file).

    ``create=False`` opens an existing store only (for readers such as the CLI).
    Raises ConfigError when it cannot be opened, with the reason.
    """
    _load_builtins()
    if isinstance(target, Path) or "://" not in target:
        return _BACKENDS["sqlite"](f"sqlite://{target}", create)
    scheme = target.split("://", 1)[0].lower()
    opener = _BACKENDS.get(scheme)
    if opener is None:
        raise ConfigError(
            f"unknown event store scheme {scheme!r}; known: {', '.join(sorted(_BACKENDS))}"
        )
    return opener(target, create)


def _load_builtins() -> None:
    for module in _BUILTINS:
        importlib.import_module(module)
