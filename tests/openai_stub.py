"""A local OpenAI-compatible server (Starlette on uvicorn, a free port) standing in for a hosted
provider: answers chat completions, streamed or not, with the text a test sets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


@dataclass
class OpenAIStub:
    answer: str = "Paris, says the fallback."
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        base = {"id": "stub-1", "created": 1, "model": body["model"]}
        if body.get("stream"):
            return StreamingResponse(self._events(base), media_type="text/event-stream")
        answer = {
            **base,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        }
        return Response(orjson.dumps(answer), media_type="application/json")

    async def _events(self, base: dict[str, Any]) -> AsyncIterator[bytes]:
        for word in self.answer.split(" "):
            chunk = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": word + " "}}],
            }
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"


@contextmanager
def openai_stub() -> Iterator[OpenAIStub]:
    stub = OpenAIStub()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = Starlette(routes=[Route("/v1/chat/completions", stub.chat, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("stub server did not start")
        time.sleep(0.02)
    stub.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield stub
    finally:
        server.should_exit = True
        thread.join(10)
