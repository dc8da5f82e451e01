"""The event store of blocked traffic: every non-allow verdict (blocked, flagged, shadowed,
redacted, routed) kept with PII and secrets masked, in SQLite (WAL).

- :mod:`gateway.events.event`: the stored record and how an observation becomes one (masking);
- :mod:`gateway.events.db`: the SQLite schema, batch insert, read, prune;
- :mod:`gateway.events.store`: ``record()`` (bounded queue, never blocks) and the writer thread.

See docs/events.md.
"""

from __future__ import annotations

from gateway.events.db import EventDB
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
    "open_events",
    "redact",
]


def open_events(settings: Settings, metrics: Metrics) -> EventRecorder:
    """The configured recorder. Nothing touches the disk until ``start()``."""
    if not settings.events_enabled:
        return NoEvents()
    return EventStore(
        settings.events_path,
        metrics,
        queue_size=settings.events_queue_size,
        retention_days=settings.events_retention_days,
    )
