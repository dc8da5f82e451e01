"""The event store's two halves: ``record()`` on the request path, one writer thread behind it.

``record()`` never waits and never does I/O: it puts an :class:`Observation` on a bounded queue
with ``put_nowait``. When the queue is full the event is **dropped**, counted in
``gateway_events_dropped{reason="queue_full"}`` and logged (at most once per
``DROP_LOG_INTERVAL_S``): the alternative, waiting for room, would let a slow disk slow every
blocked request, and a request must never wait on the audit trail. Size the queue
(``GATEWAY_EVENTS_QUEUE_SIZE``) for the bursts you expect and alert on the drop counter.

The writer thread takes what is queued in batches of up to ``batch_size``, masks and serialises
each event, and inserts the batch in one transaction. An event is *acknowledged* once that
transaction has committed (``gateway_events_written``); from then on it survives a ``kill -9``
(see :mod:`gateway.events.db`). Events still queued at a hard kill are lost; on an orderly
shutdown ``close()`` writes everything queued before it returns.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from gateway.events.db import EventDB, open_db
from gateway.events.event import Event, Observation, policy_version, to_event
from gateway.metrics import Metrics
from gateway.pipeline import Action, CheckContext, PipelineResult
from gateway.policy import Policy
from gateway.tracing import current_trace_id

DROP_LOG_INTERVAL_S = 10.0
PRUNE_INTERVAL_S = 3600.0
_RETRIES = (0.05, 0.25, 1.0)
_STOP = None

log = structlog.get_logger("gateway.events")


class EventRecorder(Protocol):
    def record(
        self,
        result: PipelineResult,
        ctx: CheckContext,
        policy: Policy,
        *,
        adapter: str | None = None,
        trace_id: str | None = None,
    ) -> bool: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class NoEvents:
    """The recorder when the event store is off (``GATEWAY_EVENTS_ENABLED=false``)."""

    def record(
        self,
        result: PipelineResult,
        ctx: CheckContext,
        policy: Policy,
        *,
        adapter: str | None = None,
        trace_id: str | None = None,
    ) -> bool:
        return False

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class EventStore:
    """``target``: the store's URL, or a SQLite file's path (:func:`gateway.events.db.open_db`)."""

    def __init__(
        self,
        target: str | Path,
        metrics: Metrics,
        *,
        queue_size: int = 10_000,
        retention_days: int = 0,
        batch_size: int = 256,
    ) -> None:
        self.target = target
        self._metrics = metrics
        self._queue: queue.Queue[Observation | None] = queue.Queue(queue_size)
        self._retention = timedelta(days=retention_days) if retention_days > 0 else None
        self._batch_size = batch_size
        self._thread: threading.Thread | None = None
        self._closed = False
        self._drop_lock = threading.Lock()
        self._drops_unlogged = 0
        self._last_drop_log = 0.0
        self._versions: tuple[Policy, str] | None = None
        metrics.event_queue_depth.set_function(self._queue.qsize)

    # --- the request path ---------------------------------------------------------------------

    def record(
        self,
        result: PipelineResult,
        ctx: CheckContext,
        policy: Policy,
        *,
        adapter: str | None = None,
        trace_id: str | None = None,
    ) -> bool:
        """Queue a non-allow verdict for writing; True if queued. Never blocks."""
        if result.action is Action.ALLOW:
            return False
        if self._closed:
            self._drop("closed")
            return False
        obs = Observation(
            id=uuid.uuid4().hex,
            time=time.time(),
            result=result,
            ctx=ctx,
            policy=policy,
            adapter=adapter,
            trace_id=trace_id if trace_id is not None else current_trace_id(),
        )
        try:
            self._queue.put_nowait(obs)
        except queue.Full:
            self._drop("queue_full")
            return False
        return True

    def _drop(self, reason: str, n: int = 1) -> None:
        self._metrics.events_dropped.labels(reason).inc(n)
        with self._drop_lock:  # called from the event loop and the writer thread
            self._drops_unlogged += n
            now = time.monotonic()
            if now - self._last_drop_log < DROP_LOG_INTERVAL_S:
                return
            dropped, self._drops_unlogged, self._last_drop_log = self._drops_unlogged, 0, now
        log.warning("events_dropped", reason=reason, dropped=dropped)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the database (a ConfigError if it cannot be) and start the writer thread."""
        if self._thread is not None:
            return
        db = open_db(self.target)
        log.info("events_store_opened", store=db.name)  # never the password
        self._thread = threading.Thread(
            target=self._run, args=(db,), name="gateway-events-writer", daemon=True
        )
        self._thread.start()

    def flush(self) -> None:
        """Wait until everything queued so far is committed (or counted as failed)."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        """Refuse new events, write everything queued, stop the writer, close the database."""
        self._closed = True
        if self._thread is None:
            return
        while self._thread.is_alive():  # wait for room only while a writer can make it
            try:
                self._queue.put(_STOP, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._thread = None

    # --- the writer thread ----------------------------------------------------------------------

    def _run(self, db: EventDB) -> None:
        next_prune = 0.0
        try:
            while True:
                if self._retention is not None and time.monotonic() >= next_prune:
                    self._prune(db)
                    next_prune = time.monotonic() + PRUNE_INTERVAL_S
                try:
                    batch = [self._queue.get(timeout=1.0)]
                except queue.Empty:
                    continue
                while len(batch) < self._batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                try:
                    self._write(db, [o for o in batch if o is not None])
                finally:
                    for _ in batch:
                        self._queue.task_done()
                if _STOP in batch:
                    return
        finally:
            db.close()

    def _write(self, db: EventDB, batch: list[Observation]) -> None:
        events: list[Event] = []
        for obs in batch:
            try:
                events.append(to_event(obs, self._version(obs.policy)))
            except Exception:  # one bad event must not cost the batch or the thread
                log.exception("event_build_failed", event_id=obs.id)
                self._drop("write_failed")
        if not events:
            return
        for delay in (*_RETRIES, None):
            try:
                self._metrics.events_written.inc(db.insert(events))
                return
            except Exception as exc:
                if delay is None:
                    log.error("events_write_failed", error=str(exc), events=len(events))
                    self._drop("write_failed", len(events))
                    return
                time.sleep(delay)

    def _prune(self, db: EventDB) -> None:
        assert self._retention is not None
        try:
            removed = db.prune(datetime.now(UTC) - self._retention)
        except Exception as exc:
            log.error("events_prune_failed", error=str(exc))
            return
        if removed:
            log.info("events_pruned", removed=removed, older_than_days=self._retention.days)

    def _version(self, policy: Policy) -> str:
        if self._versions is None or self._versions[0] is not policy:
            self._versions = (policy, policy_version(policy))
        return self._versions[1]
