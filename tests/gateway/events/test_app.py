"""The store wired into the app: non-allow verdicts are recorded with texts masked, allowed
requests are not, a stream cut off by an output rule is recorded (one only flagged, when it
ends), and a stuck writer never slows a request (events are dropped and counted instead). On
both backends."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr
from starlette.applications import Starlette

from gateway.events import Event, events_target, open_db
from gateway.events.event import policy_version
from gateway.settings import Settings
from tests.conftest import BASE, FakeVLLM, fake_app, serving, sse_response
from tests.gateway.events.helpers import EMAIL, SECRET, policy

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"


def ask(content: str, model: str = BASE, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def events_settings(settings: Settings, store_target: str) -> Settings:
    if "://" in store_target:
        return settings.model_copy(update={"events_url": SecretStr(store_target)})
    return settings.model_copy(update={"events_path": Path(store_target)})


@contextlib.asynccontextmanager
async def running(
    settings: Settings, api_key: str, fake_vllm: FakeVLLM, exporter: InMemorySpanExporter
) -> AsyncIterator[tuple[httpx.AsyncClient, Starlette]]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = fake_app(
        settings,
        fake_vllm,
        policy=policy(),
        tracer_provider=provider,
    )
    async with serving(app, api_key) as client:
        yield client, app


def stored(settings: Settings) -> list[Event]:
    db = open_db(events_target(settings), create=False)
    try:
        return list(db.events())
    finally:
        db.close()


def server_trace_ids(exporter: InMemorySpanExporter) -> list[str]:
    spans = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    return [format(s.context.trace_id, "032x") for s in spans if s.context is not None]


async def test_blocked_and_flagged_requests_are_kept_masked_and_allowed_ones_are_not(
    events_settings: Settings, api_key: str, fake_vllm: FakeVLLM, exporter: InMemorySpanExporter
) -> None:
    async with running(events_settings, api_key, fake_vllm, exporter) as (client, _):
        blocked = await client.post(CHAT, json=ask(f"my key is {SECRET}, use it"))
        allowed = await client.post(CHAT, json=ask("What is the capital of France?"))
        flagged = await client.post(CHAT, json=ask(f"write to {EMAIL}", model="hardened"))
    assert (blocked.status_code, allowed.status_code, flagged.status_code) == (400, 200, 200)
    # Events were written by the shutdown flush at the latest.
    events = stored(events_settings)
    assert [(e.action, e.request_id) for e in events] == [
        ("block", blocked.headers["x-request-id"]),
        ("flag", flagged.headers["x-request-id"]),
    ]
    block, flag = events
    assert block.messages[0].text == "my key is <SECRET>, use it"
    assert [(f.rule, f.family) for f in block.findings] == [("creds", "secret")]
    assert (block.stage, block.principal, block.model, block.adapter) == (
        "input",
        "tester",
        BASE,
        None,
    )
    assert (block.policy, block.policy_version) == ("events-test", policy_version(policy()))
    assert flag.messages[0].text == "write to <EMAIL>" and flag.adapter == "hardened"
    traces = server_trace_ids(exporter)
    assert block.trace_id in traces and flag.trace_id in traces
    assert block.trace_id != flag.trace_id
    everything = "".join(e.model_dump_json() for e in events)
    assert SECRET not in everything and EMAIL not in everything
    assert api_key not in everything


async def test_a_stream_cut_off_by_an_output_rule_is_recorded(
    events_settings: Settings, api_key: str, fake_vllm: FakeVLLM, exporter: InMemorySpanExporter
) -> None:
    fake_vllm.handler = lambda req: sse_response(
        ["Here is a recipe: ", "banana bread, ", "mail ", EMAIL]
    )
    async with running(events_settings, api_key, fake_vllm, exporter) as (client, _):
        r = await client.post(CHAT, json=ask("a recipe please", stream=True))
    assert r.status_code == 200 and "content_policy_violation" in r.text
    [event] = stored(events_settings)
    assert (event.stage, event.action, event.request_id) == (
        "output",
        "block",
        r.headers["x-request-id"],
    )
    assert [f.rule for f in event.findings] == ["no-bananas"]
    assert event.findings[0].evidence == "banana"
    assert event.trace_id in server_trace_ids(exporter)


async def test_a_stream_an_output_rule_only_flags_is_recorded_when_it_ends(
    events_settings: Settings, api_key: str, fake_vllm: FakeVLLM, exporter: InMemorySpanExporter
) -> None:
    fake_vllm.handler = lambda req: sse_response(
        ["Here is a recipe: ", "pear tart, ", "with butter."]
    )
    async with running(events_settings, api_key, fake_vllm, exporter) as (client, _):
        r = await client.post(CHAT, json=ask("a recipe please", stream=True))
    assert r.status_code == 200 and "error" not in r.text and "with butter." in r.text
    [event] = stored(events_settings)
    assert (event.stage, event.action, event.request_id) == (
        "output",
        "flag",
        r.headers["x-request-id"],
    )
    assert [f.rule for f in event.findings] == ["pears-noted"]
    assert event.trace_id in server_trace_ids(exporter)


async def test_a_stuck_writer_drops_and_counts_events_but_never_slows_a_request(
    events_settings: Settings, api_key: str, fake_vllm: FakeVLLM, exporter: InMemorySpanExporter
) -> None:
    settings = events_settings.model_copy(update={"events_queue_size": 2})
    open_db(events_target(settings)).close()
    n = 8
    with held(str(events_target(settings))) as release:
        async with running(settings, api_key, fake_vllm, exporter) as (client, app):
            metrics = app.state.gateway.metrics
            for _ in range(n):
                # The writer is held until release() below: a request that waited for it
                # would never finish (the bound turns that hang into a failure, not a timing).
                with anyio.fail_after(30):
                    r = await client.post(CHAT, json=ask(f"call me at {EMAIL}"))
                assert r.status_code == 200
            dropped = metrics.registry.get_sample_value(
                "gateway_events_dropped_total", {"reason": "queue_full"}
            )
            assert dropped is not None and dropped >= 1
            release()  # the writer gets through; shutdown writes the rest
    written = metrics.registry.get_sample_value("gateway_events_written_total", {})
    assert written == len(stored(settings)) == n - dropped


@contextlib.contextmanager
def held(target: str) -> Iterator[Callable[[], None]]:
    """Another writer holds the store's table, so inserts must wait; call the result to let go."""
    if "://" in target:
        with psycopg.connect(target) as conn:  # a transaction until rollback()
            conn.execute("LOCK TABLE gateway_events IN EXCLUSIVE MODE")
            yield conn.rollback
        return
    lock = sqlite3.connect(target, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")

    def release() -> None:
        lock.execute("ROLLBACK")

    try:
        yield release
    finally:
        lock.close()
