"""A pure-ASGI streaming response that notices a client leaving.

It sends the body iterator's chunks and, at the same time, listens for ``http.disconnect``;
when the client goes, the iterator is closed, which closes the upstream request (see
:func:`gateway.streaming.guarded_events`). Starlette's ``StreamingResponse`` only notices on
the next send under ASGI 2.4, which with a slow upstream may be much later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class SSEResponse(Response):
    def __init__(self, body: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        self.status_code = 200
        self.background = None
        self._body = body
        self.on_close: Callable[[], None] | None = None
        """Called once the stream is over, however it ended (ends the request's span)."""
        self._extra = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            **(headers or {}),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self._extra.items()]
        async with anyio.create_task_group() as tg:

            async def listen() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(listen)
            try:
                await send({"type": "http.response.start", "status": 200, "headers": raw})
                async for chunk in self._body:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass  # the client went away while we were sending
            finally:
                aclose = getattr(self._body, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
                tg.cancel_scope.cancel()
                if self.on_close is not None:
                    self.on_close()
