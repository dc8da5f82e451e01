"""The event store of blocked traffic: every non-allow verdict (blocked, flagged, shadowed,
redacted, routed) kept with PII and secrets masked, in SQLite (WAL) or PostgreSQL.

- :mod:`gateway.events.event`: the stored record and how an observation becomes one (masking);
- :mod:`gateway.events.db`: the :class:`EventDB` protocol and the backends by URL scheme;
- :mod:`gateway.events.sqlite`, :mod:`gateway.events.postgres`: the two backends;
- :mod:`gateway.events.store`: ``record()`` (bounded queue, never blocks) and the writer thread.

See docs/events.md.
"""

from __future__ import annotations

from pathlib import Path

from gateway.events.db import EventDB, open_db, schemes
from gateway.events.event import Event, StoredFinding, StoredMessage, redact
from gateway.events.store import EventRecorder, EventStore, NoEvents
from gateway.metrics import Metrics
from gateway.settings import Settings

__all__ = [
    "Event",
    "EventDB",
    "EventRecorder",
    "EventStore",
    "NoEvents",
    "StoredFinding",
    "StoredMessage",
    "events_target",
    "open_db",
    "open_events",
    "redact",
    "schemes",
]


def events_target(settings: Settings) -> str | Path:
    """The configured store: ``GATEWAY_EVENTS_URL`` if set, else ``GATEWAY_EVENTS_PATH``."""
    if settings.events_url is not None:
        return settings.events_url.get_secret_value()
    return settings.events_path


def open_events(settings: Settings, metrics: Metrics) -> EventRecorder:
    """The configured recorder. Nothing touches the store until ``start()``."""
    if not settings.events_enabled:
        return NoEvents()
    return EventStore(
        events_target(settings),
        metrics,
        queue_size=settings.events_queue_size,
        retention_days=settings.events_retention_days,
    )
