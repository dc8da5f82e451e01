"""Fixtures shared by the gateway tests beyond one folder: the event store's backends (used by
tests/gateway/events/ and tests/gateway/test_events_cli.py), defined once so the session's
PostgreSQL server is started once."""

from tests.gateway.events.postgres_server import postgres_server, store_target

__all__ = ["postgres_server", "store_target"]
