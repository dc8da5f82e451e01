"""Streaming: SSE out, with output checks over a sliding window and a bounded hold-back.

Upstream events are held back until the text after them is at least ``hold_back_chars`` long,
and the output pipeline runs over the tail window of each choice as text arrives. A violation
stops forwarding: the client gets a final SSE event with an OpenAI-style error, then ``[DONE]``.
Text within the hold-back never reaches the client before it was checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson

from gateway.backends.base import UpstreamStream
from gateway.errors import GatewayError, PolicyViolation, UpstreamBadResponse
from gateway.openai_api import Endpoint, Segment, delta_text
from gateway.pipeline import Action, CheckContext, Pipeline, PipelineResult

DONE = b"data: [DONE]\n\n"


def sse(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def sse_error(exc: GatewayError) -> bytes:
    return sse(orjson.dumps(exc.envelope()))


@dataclass
class _Held:
    data: bytes
    releasable_at: int  # total chars seen when this event may go out


class StreamGuard:
    """Holds back and checks one streamed answer. Pure logic; no I/O."""

    def __init__(
        self,
        pipeline: Pipeline,
        ctx: CheckContext,
        endpoint: Endpoint,
        *,
        hold_back_chars: int = 200,
        window_chars: int = 2000,
    ) -> None:
        self._pipeline = pipeline
        self._ctx = ctx
        self._endpoint = endpoint
        self._hold_back = hold_back_chars
        self._window = max(window_chars, hold_back_chars * 2)
        self._texts: dict[int, str] = {}
        self._held: list[_Held] = []
        self._seen = 0
        self.result: PipelineResult | None = None

    async def feed(self, data: bytes) -> list[bytes]:
        """Take one upstream event; return the events now safe to send."""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse("the model server sent a malformed stream event") from None
        if not isinstance(chunk, dict):
            raise UpstreamBadResponse("the model server sent a stream event that is not an object")
        if isinstance(chunk.get("error"), dict):
            raise UpstreamBadResponse(str(chunk["error"].get("message", "upstream error")))
        pieces = delta_text(self._endpoint, chunk)
        for index, text in pieces:
            self._texts[index] = self._texts.get(index, "") + text
            self._seen += len(text)
        self._held.append(_Held(data, self._seen + self._hold_back))
        if pieces and self._pipeline.rules:
            await self._check(final=False)
        return self._release(self._seen)

    async def finish(self) -> list[bytes]:
        """The upstream ended: check everything not yet checked whole, release the rest."""
        if self._pipeline.rules:
            await self._check(final=True)
        return self._release(None)

    async def _check(self, *, final: bool) -> None:
        segments = [
            Segment("assistant", text if final else text[-self._window :], index, ())
            for index, text in sorted(self._texts.items())
        ]
        result = await self._pipeline.run(segments, self._ctx)
        if result.action.severity > (self.result.action.severity if self.result else -1):
            self.result = result
        if result.action in (Action.BLOCK, Action.REDACT, Action.ROUTE):
            # Mid-stream, masking already-sent text is impossible: a redact or route cuts too.
            raise PolicyViolation(
                f"the answer was stopped by policy: {result.reason()}",
                rules=tuple(
                    o.rule.id for o in result.outcomes if o.verdict.action is result.action
                ),
            )

    def _release(self, seen: int | None) -> list[bytes]:
        out: list[bytes] = []
        while self._held and (seen is None or self._held[0].releasable_at <= seen):
            out.append(sse(self._held.pop(0).data))
        return out


async def guarded_events(
    upstream: UpstreamStream,
    guard: StreamGuard,
    on_error: Callable[[GatewayError], None],
    on_first_token: Callable[[], None] | None = None,
    on_done: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """The client's SSE body. Closing this generator (client gone) closes the upstream.
    ``on_error`` runs when the stream is stopped, ``on_done`` when it was checked to the end."""
    first = True
    try:
        async for data in upstream.data():
            if data == b"[DONE]":
                break
            if first and on_first_token is not None:
                on_first_token()
                first = False
            for event in await guard.feed(data):
                yield event
        else:  # the upstream ended without [DONE]: cut short, not finished
            raise UpstreamBadResponse("the model server's stream ended without [DONE]")
        for event in await guard.finish():
            yield event
        if on_done is not None:
            on_done()
        yield DONE
    except GatewayError as exc:
        on_error(exc)
        yield sse_error(exc)
        yield DONE
    finally:
        await upstream.aclose()
