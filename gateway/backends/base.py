"""The backend protocol: what the routes need from an upstream, whatever serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from gateway.openai_api import JSON, Endpoint


class UpstreamStream(Protocol):
    """An open streamed answer. Iterate SSE ``data:`` payloads, the last one ``[DONE]`` (a
    stream that ends without it was cut short: the client gets an error); always ``aclose()``."""

    def data(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Backend(Protocol):
    async def complete(
        self, endpoint: Endpoint, body: JSON, headers: Mapping[str, str] | None = None
    ) -> JSON: ...

    async def open_stream(
        self, endpoint: Endpoint, body: JSON, headers: Mapping[str, str] | None = None
    ) -> UpstreamStream:
        """Send the request; raise an UpstreamError before any byte goes to the client."""
        ...

    async def model_ids(self) -> list[str]: ...

    async def load_adapter(self, name: str, path: str) -> None: ...

    async def aclose(self) -> None: ...
