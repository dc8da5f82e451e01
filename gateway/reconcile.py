"""Keeps the upstream serving every registered adapter.

Compares the upstream's ``/v1/models`` with the registry and loads what is missing through
``/v1/load_lora_adapter``; runs at start and then periodically, so a restarted vLLM gets its
adapters back without an operator.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from gateway.adapters import Catalog
from gateway.backends.base import Backend
from gateway.errors import GatewayError
from gateway.metrics import Metrics

log = structlog.get_logger("gateway.adapters")


async def reconcile_once(
    backend: Backend, catalog: Catalog, metrics: Metrics, upstream_dir: Path | None = None
) -> list[str]:
    """Load every registered adapter the upstream lacks; return the names still missing."""
    served = set(await backend.model_ids())
    missing = []
    for name, adapter in sorted(catalog.adapters.items()):
        if name in served:
            continue
        path = str(upstream_dir / adapter.path.name) if upstream_dir else str(adapter.path)
        try:
            await backend.load_adapter(name, path)
        except GatewayError as exc:
            metrics.adapter_loads.labels(name, "error").inc()
            log.error("adapter_load_failed", adapter=name, error=exc.message)
            missing.append(name)
        else:
            metrics.adapter_loads.labels(name, "loaded").inc()
            log.info("adapter_loaded", adapter=name)
    return missing


async def reconcile_forever(
    backend: Backend,
    catalog: Catalog,
    metrics: Metrics,
    interval_s: float,
    upstream_dir: Path | None = None,
) -> None:
    while True:
        try:
            missing = await reconcile_once(backend, catalog, metrics, upstream_dir)
        except GatewayError:
            missing = ["<upstream unreachable>"]
        await asyncio.sleep(min(interval_s, 2.0) if missing else interval_s)
