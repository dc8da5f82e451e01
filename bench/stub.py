"""A fast OpenAI-compatible upstream: fixed small answers, no model.

One uvicorn process (uvloop + httptools), bodies encoded once at import. Run with
``python -m bench.stub --port N``. It answers any model name, so the same stub sits behind
the direct path, the gateway and LiteLLM proxy.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

MODEL = "smollm2-135m-instruct"
ANSWER = "The capital of France is Paris."
PIECES = ("The capital", " of France", " is", " Paris", ".")
_CREATED = int(time.time())

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": _CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    }
)


def _chunk(delta: dict[str, str], finish: str | None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


STREAM = (
    _chunk({"role": "assistant", "content": ""}, None),
    *(_chunk({"content": p}, None) for p in PIECES),
    _chunk({}, "stop"),
    b"data: [DONE]\n\n",
)
MODELS = orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


async def _events() -> AsyncIterator[bytes]:
    for event in STREAM:
        yield event


async def chat(request: Request) -> Response:
    body = orjson.loads(await request.body())
    if body.get("stream"):
        return StreamingResponse(_events(), media_type="text/event-stream")
    return Response(COMPLETION, media_type="application/json")


async def models(request: Request) -> Response:
    return Response(MODELS, media_type="application/json")


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
