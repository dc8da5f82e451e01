"""Adapter lifecycle across the fleet: register, load, unload, change status, reconcile.

The registry (manifests in ``adapters/``, held by :class:`~gateway.adapters.Catalog`) says what
should be loaded; this module makes every replica agree. One lock per adapter name: the same
adapter is loaded once however many callers ask (admin requests, the reconcile loop), while
different adapters load concurrently. Within a name, replicas are loaded concurrently.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import structlog

from gateway.adapters import (
    LOADED,
    Adapter,
    Catalog,
    Status,
    check_base_model,
    load_adapter,
    valid_name,
    write_manifest,
)
from gateway.backends.fleet import Fleet
from gateway.backends.replica import Replica
from gateway.errors import ConfigError, GatewayError, InvalidRequest, ModelNotFound
from gateway.metrics import Metrics

log = structlog.get_logger("gateway.adapters")
Outcome = dict[str, str]
"""Per replica URL: ``loaded``, ``already loaded``, ``unloaded``, ``not loaded`` or the error."""


class AdapterLifecycle:
    def __init__(
        self,
        catalog: Catalog,
        fleet: Fleet,
        metrics: Metrics,
        adapters_dir: Path,
        upstream_dir: Path | None = None,
    ) -> None:
        self.catalog, self.fleet, self.metrics = catalog, fleet, metrics
        self.adapters_dir, self.upstream_dir = adapters_dir, upstream_dir
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def get(self, name: str) -> Adapter:
        adapter = self.catalog.adapters.get(name) if valid_name(name) else None
        if adapter is None:
            raise ModelNotFound(f"no registered adapter {name!r}", param="name")
        return adapter

    async def register(self, name: str, status: Status | None = None) -> tuple[Adapter, Outcome]:
        """Read ``adapters/<name>/`` (sha256 verified), add it, apply its status to the fleet."""
        if not valid_name(name):
            raise InvalidRequest(f"invalid adapter name {name!r}", param="name")
        folder = self.adapters_dir / name
        if not (folder / "manifest.yaml").is_file():
            raise ModelNotFound(f"no adapter folder with a manifest at {name!r}", param="name")
        async with self._locks[name]:
            try:
                adapter = await asyncio.to_thread(load_adapter, folder)
                check_base_model(adapter, self.catalog.base_model)
                if status is not None and status is not adapter.status:
                    adapter = await asyncio.to_thread(self._rewrite, adapter, status)
                self.catalog.put(adapter)
            except ConfigError as exc:
                raise InvalidRequest(exc.message, param="name") from None
            log.info("adapter_registered", adapter=name, status=adapter.status.value)
            return adapter, await self._apply(adapter)

    async def set_status(self, name: str, status: Status) -> tuple[Adapter, Outcome]:
        async with self._locks[name]:
            adapter = self.get(name)
            if status is not adapter.status:
                try:
                    adapter = await asyncio.to_thread(self._rewrite, adapter, status)
                except ConfigError as exc:  # e.g. weights changed since registration
                    raise InvalidRequest(exc.message, param="name") from None
                self.catalog.put(adapter)
                log.info("adapter_status", adapter=name, status=status.value)
            return adapter, await self._apply(adapter)

    async def load(self, name: str) -> Outcome:
        async with self._locks[name]:
            adapter = self.get(name)
            if adapter.status is Status.RETIRED:
                raise InvalidRequest(f"adapter {name!r} is retired; promote it first")
            return await self._everywhere(adapter, load=True)

    async def unload(self, name: str) -> Outcome:
        async with self._locks[name]:
            adapter = self.get(name)
            if adapter.status in LOADED:
                raise InvalidRequest(
                    f"adapter {name!r} is {adapter.status.value}: the fleet keeps it loaded; "
                    "set it to candidate or retire it instead"
                )
            return await self._everywhere(adapter, load=False)

    async def reconcile(self, replica: Replica) -> list[str]:
        """Probe one replica, load what the registry wants and it lacks, unload what is retired.

        Returns the names still missing there. Raises the probe's error if it is down.
        """
        served = await replica.probe()
        missing = []
        for name, adapter in sorted(self.catalog.adapters.items()):
            wanted = adapter.status in LOADED
            if wanted != (name in served) and (wanted or adapter.status is Status.RETIRED):
                async with self._locks[name]:
                    outcome = await self._on(replica, self.catalog.adapters[name], load=wanted)
                if wanted and outcome not in ("loaded", "already loaded"):
                    missing.append(name)
        return missing

    async def reconcile_all(self) -> list[str]:
        """Every replica; returns ``url: name`` for whatever is still missing or down."""
        results = await asyncio.gather(
            *(self.reconcile(r) for r in self.fleet.replicas), return_exceptions=True
        )
        pending = []
        for replica, result in zip(self.fleet.replicas, results, strict=True):
            if isinstance(result, GatewayError):
                pending.append(f"{replica.url}: down ({result.message})")
            elif isinstance(result, BaseException):
                raise result
            else:
                pending.extend(f"{replica.url}: {name}" for name in result)
        return pending

    def _rewrite(self, adapter: Adapter, status: Status) -> Adapter:
        write_manifest(adapter.folder, adapter.manifest.model_copy(update={"status": status}))
        return load_adapter(adapter.folder)

    async def _apply(self, adapter: Adapter) -> Outcome:
        """Make the fleet match the adapter's status (the caller holds its lock)."""
        if adapter.status in LOADED:
            return await self._everywhere(adapter, load=True)
        return await self._everywhere(adapter, load=False)

    async def _everywhere(self, adapter: Adapter, *, load: bool) -> Outcome:
        replicas = self.fleet.replicas
        results = await asyncio.gather(*(self._on(r, adapter, load=load) for r in replicas))
        return dict(zip((r.url for r in replicas), results, strict=True))

    async def _on(self, replica: Replica, adapter: Adapter, *, load: bool) -> str:
        has = replica.models is not None and adapter.name in replica.models
        if load and has:
            return "already loaded"
        if not load and replica.models is not None and not has:
            return "not loaded"
        try:
            if load:
                path = adapter.upstream_path(self.upstream_dir)
                await replica.backend.load_adapter(adapter.name, path)
                replica.loaded(adapter.name)
            else:
                await replica.backend.unload_adapter(adapter.name)
                replica.unloaded(adapter.name)
        except GatewayError as exc:
            self.metrics.adapter_loads.labels(adapter.name, "error").inc()
            log.error("adapter_sync_failed", adapter=adapter.name, replica=replica.url, load=load)
            return f"error: {exc.message}"
        self.metrics.adapter_loads.labels(adapter.name, "loaded" if load else "unloaded").inc()
        log.info("adapter_synced", adapter=adapter.name, replica=replica.url, load=load)
        return "loaded" if load else "unloaded"
