from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx
import orjson
import pytest

from gateway.backends.factory import build_fleet
from gateway.backends.fleet import Fleet
from gateway.errors import UpstreamBadResponse, UpstreamUnavailable, UpstreamUnreachable
from gateway.openai_api import JSON, Endpoint
from gateway.settings import Settings
from tests.conftest import BASE, sse_body
from tests.gateway.fleet_fakes import FakeFleet

pytestmark = pytest.mark.anyio


def fleet_of(fake: FakeFleet, settings: Settings, **extra: object) -> Fleet:
    s = settings.model_copy(update={"upstream_urls": fake.urls, **extra})
    return build_fleet(s, fake.transport())


def ask(model: str = BASE) -> JSON:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


async def test_routes_only_to_replicas_that_have_the_adapter(settings: Settings) -> None:
    fake = FakeFleet("a", "b")
    fake["b"].models.add("hardened")
    fleet = fleet_of(fake, settings)
    await fleet.model_ids()  # the probe learns what each replica has loaded
    for _ in range(4):
        await fleet.complete(Endpoint.CHAT, ask("hardened"))
    assert fake["b"].served == ["hardened"] * 4 and fake["a"].served == []
    await fleet.aclose()


async def test_least_outstanding_first_and_ties_alternate(settings: Settings) -> None:
    fake = FakeFleet("a", "b")
    fleet = fleet_of(fake, settings)
    for _ in range(4):
        await fleet.complete(Endpoint.CHAT, ask())
    assert len(fake["a"].served) == len(fake["b"].served) == 2
    busy = next(r for r in fleet.replicas if r.url == "http://a")
    busy.outstanding = 5  # a is busy with five streams
    await fleet.complete(Endpoint.CHAT, ask())
    assert len(fake["b"].served) == 3
    await fleet.aclose()


async def test_connection_errors_retry_on_another_replica(settings: Settings) -> None:
    fake = FakeFleet("a", "b")
    fake["a"].down = True
    fleet = fleet_of(fake, settings)
    for _ in range(3):
        answer = await fleet.complete(Endpoint.CHAT, ask())
        assert answer["choices"][0]["message"]["content"] == "from b"
    down = next(r for r in fleet.replicas if r.url == "http://a")
    assert not down.healthy and down.outstanding == 0
    await fleet.aclose()


async def test_other_failures_are_not_retried(settings: Settings) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        return httpx.Response(500, text="boom")

    s = settings.model_copy(update={"upstream_urls": ["http://a", "http://b"]})
    fleet = build_fleet(s, httpx.MockTransport(handler))
    with pytest.raises(UpstreamBadResponse):
        await fleet.complete(Endpoint.CHAT, ask())
    assert len(calls) == 1
    await fleet.aclose()


async def test_a_stream_is_never_retried_once_open(settings: Settings) -> None:
    calls: list[str] = []

    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield sse_body(["Par"]).split(b"\n\n")[1] + b"\n\n"
            raise httpx.ReadError("replica died mid-stream")

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        return httpx.Response(200, stream=Broken())

    s = settings.model_copy(update={"upstream_urls": ["http://a", "http://b"]})
    fleet = build_fleet(s, httpx.MockTransport(handler))
    stream = await fleet.open_stream(Endpoint.CHAT, {**ask(), "stream": True})
    got = []
    with pytest.raises(UpstreamBadResponse):
        async for data in stream.data():
            got.append(orjson.loads(data))
    await stream.aclose()
    assert len(got) == 1 and len(calls) == 1
    assert all(r.outstanding == 0 for r in fleet.replicas)
    await fleet.aclose()


class StubBackend:
    """A stand-in fallback provider (the litellm backend has its own tests)."""

    def __init__(self) -> None:
        self.bodies: list[JSON] = []

    async def complete(
        self, endpoint: Endpoint, body: JSON, headers: Mapping[str, str] | None = None
    ) -> JSON:
        self.bodies.append(body)
        return {"choices": [{"message": {"role": "assistant", "content": "fallback"}}]}

    async def open_stream(self, *a: object, **k: object) -> object:
        raise AssertionError("not used")

    async def model_ids(self) -> list[str]:
        return []

    async def load_adapter(self, name: str, path: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_all_down_raises_or_takes_the_models_fallback(settings: Settings) -> None:
    fake = FakeFleet("a", "b")
    fake["a"].down = fake["b"].down = True
    fleet = fleet_of(fake, settings)
    with pytest.raises(UpstreamUnreachable):
        await fleet.complete(Endpoint.CHAT, ask())
    stub = StubBackend()
    fleet.fallbacks[BASE] = stub  # type: ignore[assignment]
    answer = await fleet.complete(Endpoint.CHAT, ask())
    assert answer["choices"][0]["message"]["content"] == "fallback"
    with pytest.raises(UpstreamUnavailable):  # no fallback for this one
        await fleet.complete(Endpoint.CHAT, ask("hardened"))
    await fleet.aclose()


async def test_breaker_opens_and_a_probe_closes_it(settings: Settings) -> None:
    fake = FakeFleet("a")
    fleet = fleet_of(fake, settings, upstream_failure_threshold=2, upstream_breaker_reset_s=60)
    fake["a"].fail_status = 500
    for _ in range(2):
        with pytest.raises(UpstreamBadResponse):
            await fleet.complete(Endpoint.CHAT, ask())
    fake["a"].fail_status = None
    with pytest.raises(UpstreamUnavailable, match="no healthy"):
        await fleet.complete(Endpoint.CHAT, ask())  # open: not even tried
    assert await fleet.model_ids() == [BASE]  # the health probe succeeds: closed again
    assert (await fleet.complete(Endpoint.CHAT, ask()))["model"] == BASE


async def test_an_unreachable_replica_is_out_until_a_probe_finds_it(settings: Settings) -> None:
    fake = FakeFleet("a")
    fleet = fleet_of(fake, settings)
    fake["a"].down = True
    with pytest.raises(UpstreamUnreachable):
        await fleet.complete(Endpoint.CHAT, ask())
    fake["a"].down = False
    with pytest.raises(UpstreamUnavailable, match="no healthy"):
        await fleet.complete(Endpoint.CHAT, ask())
    await fleet.model_ids()
    assert (await fleet.complete(Endpoint.CHAT, ask()))["model"] == BASE
    await fleet.aclose()


async def test_model_ids_are_what_every_live_replica_has(settings: Settings) -> None:
    fake = FakeFleet("a", "b", "c")
    fake["a"].models.add("x")
    fake["b"].models.update({"x", "y"})
    fake["c"].down = True
    fleet = fleet_of(fake, settings)
    assert await fleet.model_ids() == [BASE, "x"]
    fake["a"].down = fake["b"].down = True
    with pytest.raises(UpstreamUnreachable):
        await fleet.model_ids()
    await fleet.aclose()
