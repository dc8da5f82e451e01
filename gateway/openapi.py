"""The gateway's OpenAPI 3.1 document, served at ``/openapi.json``.

Written out by hand rather than generated: the endpoints read raw JSON on purpose (lenient, see
:mod:`gateway.openai_api`), so there are no request models to generate it from. It describes
what the gateway itself enforces (auth, the fields it reads, its error envelope) and leaves
every other OpenAI field open (``additionalProperties``), as the gateway passes them on.
``tests/gateway/test_openapi_fuzz.py`` fuzzes the app against this document (schemathesis), so
a drift between the two shows up as a failing test.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import json_response
from gateway.openai_api import CHAT_ROLES

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON_ERROR = {"content": {"application/json": {"schema": _ERROR}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": _STATUS[s], **_JSON_ERROR} for s in statuses}


_STATUS = {
    400: "invalid request, or blocked by policy (code content_policy_violation)",
    401: "missing or invalid API key",
    403: "the key may not use this model",
    404: "no such model or route",
    413: "request body over the configured limit",
    415: "content type is not JSON",
    429: "rate limited",
    502: "the model server failed or answered badly",
    503: "the model server is unreachable",
    504: "the model server did not answer in time",
}
_COMPLETION_ERRORS = _errors(400, 401, 403, 404, 413, 415, 429, 502, 503, 504)

_TEXT_PART = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "text": {"type": "string"}},
    "additionalProperties": True,
}
_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": sorted(CHAT_ROLES)},
        "content": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": _TEXT_PART},
                {"type": "null"},
            ]
        },
    },
    "additionalProperties": True,
}
_COMMON = {
    "model": {"type": "string", "minLength": 1, "description": "base model or adapter name"},
    "stream": {"type": "boolean", "default": False},
}
_CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {**_COMMON, "messages": {"type": "array", "minItems": 1, "items": _MESSAGE}},
    "additionalProperties": True,
}
_COMPLETION_REQUEST = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {
        **_COMMON,
        "prompt": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "minItems": 1, "items": {"type": "string"}},
            ]
        },
    },
    "additionalProperties": True,
}
_ANSWER = {
    "description": "the model's answer (JSON), or server-sent events when stream is true",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/event-stream": {"schema": {}},  # one OpenAI chunk per event, then [DONE]
    },
}


def _completion(summary: str, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request}},
            },
            "responses": {"200": _ANSWER, **_COMPLETION_ERRORS},
        }
    }


def _get(summary: str, ok: dict[str, Any], *errors: int, secured: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **_errors(*errors)}}
    if secured:
        operation["security"] = [{"bearer": []}]
    return {"get": operation}


def _json(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {}}}}


def openapi_document() -> dict[str, Any]:
    """The document; a fresh dict each call (callers may not share mutations)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "guarded-gateway",
            "version": "1",
            "description": "A guarded, OpenAI-compatible gateway in front of vLLM.",
        },
        "paths": {
            "/v1/chat/completions": _completion("Chat completion, checked", _CHAT_REQUEST),
            "/v1/completions": _completion("Text completion, checked", _COMPLETION_REQUEST),
            "/v1/models": _get("Models this key may use", _json("model list"), 401, secured=True),
            "/healthz": _get("Liveness", _json("alive")),
            "/readyz": _get("Readiness (the upstream serves the base model)", _json("ready"), 503),
            "/metrics": _get(
                "Prometheus metrics",
                {"description": "exposition format", "content": {"text/plain": {}}},
            ),
            "/openapi.json": _get("This document", _json("OpenAPI 3.1")),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["message", "type", "code"],
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "code": {"type": ["string", "null"]},
                                "param": {"type": ["string", "null"]},
                            },
                        }
                    },
                }
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    return json_response(openapi_document())
