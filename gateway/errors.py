"""The gateway's exception tree and the one place that turns it into responses.

Every error a client can see is an OpenAI-style envelope::

    {"error": {"message": "...", "type": "...", "code": "...", "param": null}}

The tree (HTTP status in brackets)::

    GatewayError [500 server_error]
    ├── InvalidRequest [400 invalid_request_error]
    │   ├── PolicyViolation [400 content_policy_violation]   never 401/403: scanners abort on those
    │   ├── ModelNotFound [404 model_not_found]
    │   ├── BodyTooLarge [413 request_too_large]
    │   └── UnsupportedMediaType [415 unsupported_media_type]
    ├── AuthenticationFailed [401 invalid_api_key]
    ├── PermissionDenied [403 model_not_allowed]
    │   └── AdminRequired [403 admin_key_required]
    ├── RateLimited [429 rate_limit_exceeded]
    ├── UpstreamError [502 upstream_error]
    │   ├── UpstreamBadResponse [502 upstream_bad_response]
    │   ├── UpstreamUnavailable [503 upstream_unavailable]
    │   │   └── UpstreamUnreachable [503]   no connection made: safe to try another replica
    │   ├── UpstreamTimeout [504 upstream_timeout]
    │   └── UpstreamRejected [4xx as the upstream said]
    └── ConfigError [500 configuration_error]   raised at load time, before serving

Routes raise; :func:`install_error_handlers` maps. Nothing else builds error bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response


class GatewayError(Exception):
    """Base of every error the gateway reports to a client."""

    status_code = 500
    error_type = "server_error"
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def headers(self) -> dict[str, str]:
        return {}

    def envelope(self) -> dict[str, Any]:
        return error_envelope(self.message, self.error_type, self.code, self.param)


class InvalidRequest(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class PolicyViolation(InvalidRequest):
    """A check blocked the request or the answer. Always 400."""

    code = "content_policy_violation"

    def __init__(self, message: str, *, rules: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.rules = rules


class ModelNotFound(InvalidRequest):
    status_code = 404
    code = "model_not_found"


class BodyTooLarge(InvalidRequest):
    status_code = 413
    code = "request_too_large"


class UnsupportedMediaType(InvalidRequest):
    status_code = 415
    code = "unsupported_media_type"


class AuthenticationFailed(GatewayError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status_code = 403
    error_type = "permission_error"
    code = "model_not_allowed"


class AdminRequired(PermissionDenied):
    """A valid key that is not an admin key, on the admin API."""

    code = "admin_key_required"


class RateLimited(GatewayError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s)))}


class UpstreamError(GatewayError):
    status_code = 502
    error_type = "upstream_error"
    code = "upstream_error"


class UpstreamBadResponse(UpstreamError):
    code = "upstream_bad_response"


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    code = "upstream_unavailable"


class UpstreamUnreachable(UpstreamUnavailable):
    """No connection could be made, so nothing was sent: another replica may be tried."""


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"


class UpstreamRejected(UpstreamError):
    """The upstream refused the request as invalid (its 4xx); passed on with its status."""

    error_type = "invalid_request_error"

    def __init__(self, message: str, *, status_code: int, code: str | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code or "upstream_rejected"


class ConfigError(GatewayError):
    """Our own configuration is wrong. Raised at load time; never silently ignored."""

    code = "configuration_error"


def error_envelope(
    message: str, error_type: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "code": code, "param": param}}


def json_response(
    body: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status_code, headers=headers, media_type="application/json"
    )


def error_response(exc: GatewayError) -> Response:
    return json_response(exc.envelope(), exc.status_code, exc.headers())


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _gateway_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return json_response(
        error_envelope(exc.detail, "invalid_request_error", code), exc.status_code, exc.headers
    )


async def _unexpected_error(_: Request, exc: Exception) -> Response:
    return json_response(
        error_envelope("internal error in the gateway", "server_error", "internal_error"), 500
    )


def install_error_handlers(app: Starlette) -> None:
    """The one place exceptions become responses."""
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
