"""Keeps every replica serving what the registry says, and watches their health.

Each tick probes every replica's ``/v1/models`` (the health check), loads the shadow and active
adapters a replica lacks through ``/v1/load_lora_adapter`` and unloads retired ones (see
:class:`gateway.lifecycle.AdapterLifecycle`). So a restarted vLLM gets its adapters back without
an operator. While anything is missing or down it looks again every second.
"""

from __future__ import annotations

import asyncio

import structlog

from gateway.lifecycle import AdapterLifecycle

log = structlog.get_logger("gateway.adapters")
RETRY_S = 1.0


async def reconcile_forever(lifecycle: AdapterLifecycle, interval_s: float) -> None:
    last: list[str] = []
    while True:
        pending = await lifecycle.reconcile_all()
        if pending != last:
            log.info("fleet_reconciled", pending=pending)
            last = pending
        await asyncio.sleep(min(interval_s, RETRY_S) if pending else interval_s)
