"""The admin API: the adapter registry and the fleet, on admin keys only (docs/fleet.md).

Routes (all JSON; ``Authorization: Bearer <key>`` with ``"admin": true`` in the keys file;
no key or a wrong key -> 401, a non-admin key -> 403)::

    GET  /admin/adapters                   registry + replica states
    POST /admin/adapters                   {"name": ..., "status": optional} register
    POST /admin/adapters/{name}/load       load on every replica now
    POST /admin/adapters/{name}/unload     unload everywhere (candidate or retired only)
    POST /admin/adapters/{name}/promote    {"status": "candidate|shadow|active|retired"}
    POST /admin/adapters/{name}/retire     = promote to retired

When ``GATEWAY_ADMIN_PORT`` is set these answer only on that port (404 elsewhere).
"""

from __future__ import annotations

import socket
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.adapters import Adapter, Status
from gateway.auth import Principal
from gateway.errors import AdminRequired, InvalidRequest, json_response
from gateway.lifecycle import AdapterLifecycle, Outcome
from gateway.settings import Settings
from gateway.state import gateway_of

M = TypeVar("M", bound=BaseModel)


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    status: Status | None = None


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status


def _lifecycle(request: Request) -> tuple[AdapterLifecycle, Principal]:
    gw = gateway_of(request)
    admin_port = gw.settings.admin_port
    server = request.scope.get("server")
    if admin_port is not None and (server is None or server[1] != admin_port):
        raise HTTPException(404, "Not Found")
    principal = gw.keys.authenticate(request.headers.get("authorization"))
    if not principal.admin:
        raise AdminRequired("this API key is not an admin key")
    if gw.lifecycle is None:
        raise HTTPException(404, "this gateway has no adapter fleet")
    return gw.lifecycle, principal


async def _body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    try:
        return model.model_validate(orjson.loads(raw or b"{}"))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise InvalidRequest(f"invalid body: {exc}") from None


def describe(adapter: Adapter) -> dict[str, Any]:
    return {**adapter.manifest.model_dump(mode="json"), "folder": str(adapter.folder)}


def _answer(adapter: Adapter, outcome: Outcome, status_code: int = 200) -> Response:
    return json_response({"adapter": describe(adapter), "replicas": outcome}, status_code)


async def list_adapters(request: Request) -> Response:
    lifecycle, _ = _lifecycle(request)
    adapters = [describe(a) for _, a in sorted(lifecycle.catalog.adapters.items())]
    replicas = [r.describe() for r in lifecycle.fleet.replicas]
    return json_response({"adapters": adapters, "replicas": replicas})


async def register(request: Request) -> Response:
    lifecycle, _ = _lifecycle(request)
    body = await _body(request, RegisterBody)
    adapter, outcome = await lifecycle.register(body.name, body.status)
    return _answer(adapter, outcome, 201)


async def load(request: Request) -> Response:
    lifecycle, _ = _lifecycle(request)
    name = request.path_params["name"]
    outcome = await lifecycle.load(name)
    return _answer(lifecycle.get(name), outcome)


async def unload(request: Request) -> Response:
    lifecycle, _ = _lifecycle(request)
    name = request.path_params["name"]
    outcome = await lifecycle.unload(name)
    return _answer(lifecycle.get(name), outcome)


async def promote(request: Request) -> Response:
    lifecycle, _ = _lifecycle(request)
    body = await _body(request, PromoteBody)
    adapter, outcome = await lifecycle.set_status(request.path_params["name"], body.status)
    return _answer(adapter, outcome)


async def retire(request: Request) -> Response:
    lifecycle, _ = _lifecycle(request)
    adapter, outcome = await lifecycle.set_status(request.path_params["name"], Status.RETIRED)
    return _answer(adapter, outcome)


ADMIN_ROUTES = [
    Route("/admin/adapters", list_adapters, methods=["GET"]),
    Route("/admin/adapters", register, methods=["POST"]),
    Route("/admin/adapters/{name}/load", load, methods=["POST"]),
    Route("/admin/adapters/{name}/unload", unload, methods=["POST"]),
    Route("/admin/adapters/{name}/promote", promote, methods=["POST"]),
    Route("/admin/adapters/{name}/retire", retire, methods=["POST"]),
]


def listen_sockets(settings: Settings) -> list[socket.socket]:
    """The gateway's listening socket, plus the admin port's when one is configured."""
    ports = [settings.port] + ([settings.admin_port] if settings.admin_port else [])
    return [socket.create_server((settings.host, port), backlog=2048) for port in ports]
