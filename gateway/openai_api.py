"""What clients send, read leniently.

The gateway keeps the client's JSON as it came and passes unknown OpenAI fields through untouched.
It only reads what it needs (``model``, ``stream``, message texts) and writes back two things:
the upstream model name and, when a check redacts, the redacted text.

Texts are addressed by :class:`Segment` so a check can redact one message part and the payload
is rebuilt exactly where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from gateway.errors import InvalidRequest

JSON = dict[str, Any]
MAX_JSON_DEPTH = 64
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
"""The roles OpenAI defines. Checks choose what to read by role (``system`` is trusted), so an
unknown or re-cased role (``"User"``) would be read by none of them: it is refused instead."""


class Endpoint(StrEnum):
    CHAT = "/v1/chat/completions"
    COMPLETIONS = "/v1/completions"


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of text in a request or answer, with where it lives in the payload.

    ``role`` is the chat role (``user``, ``system``, ``assistant``, ``tool``) or ``prompt`` for
    ``/v1/completions``; ``turn`` is the message index; ``path`` locates the string in the JSON.
    """

    role: str
    text: str
    turn: int
    path: tuple[str | int, ...]


def parse_body(raw: bytes) -> JSON:
    """Parse a request body as a JSON object, or raise a clear 400."""
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if _depth(body) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"request JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    return body


def _depth(value: Any) -> int:
    # Iterative, so hostile nesting cannot exhaust the stack.
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            return depth
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


def require_model(body: JSON) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    return model


def wants_stream(body: JSON) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    return stream


def input_segments(endpoint: Endpoint, body: JSON) -> list[Segment]:
    """Every text a client sent that checks must see."""
    if endpoint is Endpoint.CHAT:
        return _chat_segments(body)
    return _prompt_segments(body)


def _chat_segments(body: JSON) -> list[Segment]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    segments: list[Segment] = []
    for turn, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{turn}] must be an object", param="messages")
        role = message.get("role")
        if not isinstance(role, str) or role not in CHAT_ROLES:
            raise InvalidRequest(
                f"messages[{turn}].role must be one of {', '.join(sorted(CHAT_ROLES))}",
                param="messages",
            )
        content = message.get("content")
        base: tuple[str | int, ...] = ("messages", turn, "content")
        if isinstance(content, str):
            segments.append(Segment(role, content, turn, base))
        elif isinstance(content, list):
            for i, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    segments.append(Segment(role, part["text"], turn, (*base, i, "text")))
        elif content is not None:
            raise InvalidRequest(
                f"messages[{turn}].content must be a string or an array", param="messages"
            )
    return segments


def _prompt_segments(body: JSON) -> list[Segment]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [Segment("prompt", prompt, 0, ("prompt",))]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return [Segment("prompt", p, i, ("prompt", i)) for i, p in enumerate(prompt)]
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        raise InvalidRequest(
            "token-id prompts cannot be inspected by the gateway's checks; send text",
            param="prompt",
        )
    raise InvalidRequest("'prompt' must be a string or an array of strings", param="prompt")


def apply_text(body: JSON, segment: Segment, text: str) -> None:
    """Write ``text`` back at ``segment.path`` (used by redaction)."""
    node: Any = body
    for key in segment.path[:-1]:
        node = node[key]
    node[segment.path[-1]] = text


def answer_segments(endpoint: Endpoint, body: JSON) -> list[Segment]:
    """The texts of a non-streamed answer (one per choice)."""
    choices = body.get("choices")
    if not isinstance(choices, list):
        return []
    segments: list[Segment] = []
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        if endpoint is Endpoint.CHAT:
            message = choice.get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                path: tuple[str | int, ...] = ("choices", i, "message", "content")
                segments.append(Segment("assistant", message["content"], i, path))
        elif isinstance(choice.get("text"), str):
            segments.append(Segment("assistant", choice["text"], i, ("choices", i, "text")))
    return segments


def delta_text(endpoint: Endpoint, chunk: JSON) -> list[tuple[int, str]]:
    """(choice index, text) pairs carried by one streamed chunk."""
    out: list[tuple[int, str]] = []
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return out
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0)
        if endpoint is Endpoint.CHAT:
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else None
        else:
            text = choice.get("text")
        if isinstance(text, str) and text and isinstance(index, int):
            out.append((index, text))
    return out
