"""``finetune promote``: put an adapter that passed the gate into service.

1. the gate: the adapter's manifest must record ``evaluation.gate.passed: true``
   (``finetune eval`` writes it), else nothing happens;
2. the folder is copied into the gateway's adapters directory as ``<name>/`` with status
   ``candidate``; a folder already there is moved to ``archive`` (outside the adapters
   directory, where the registry would refuse a folder whose name is not its manifest's);
3. **with a gateway** (``gateway_url`` + an admin key) through its admin API: an adapter of that
   name that is shadow/active is first set to ``candidate`` (unloaded: vLLM would otherwise keep
   the old weights under the same name; requests for it get 404 for that moment), then
   ``POST /admin/adapters`` registers the new folder (sha256 verified by the gateway) and
   ``POST /admin/adapters/{name}/promote`` sets ``shadow`` or ``active`` (loaded on every
   replica). If that fails, the new adapter is set back to candidate and the archived one is
   restored and re-registered with its old status (rollback);
4. **without a gateway**: the manifest is set to the target status and, when ``vllm_url`` is
   given, the adapter is loaded straight into vLLM (``/v1/load_lora_adapter``); a running
   gateway picks it up when restarted.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from finetune.manifest import update
from finetune.vllm_client import VLLMClient
from gateway.adapters import MANIFEST, Status, read_manifest

PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", MANIFEST)


class PromoteError(RuntimeError):
    """The adapter was not promoted; the message says why (and what was rolled back)."""


@dataclass
class Promotion:
    name: str
    target: Path
    status: Status
    archived: Path | None = None
    steps: list[str] = field(default_factory=list)


def gate_passed(folder: Path) -> bool:
    gate = read_manifest(folder).evaluation.get("gate")
    return isinstance(gate, dict) and gate.get("passed") is True


def install(source: Path, adapters_dir: Path, archive: Path) -> Promotion:
    """Copy the PEFT files and manifest into ``adapters_dir/<name>`` as a candidate."""
    manifest = read_manifest(source)
    target = adapters_dir / manifest.name
    promo = Promotion(manifest.name, target, manifest.status)
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        promo.archived = archive / f"{manifest.name}-{stamp}"
        archive.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target), str(promo.archived))
        promo.steps.append(f"archived the previous {target} to {promo.archived}")
    target.mkdir(parents=True)
    for name in PEFT_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    update(target, status=Status.CANDIDATE)
    promo.steps.append(f"copied {source} to {target} (candidate)")
    return promo


class AdminAPI:
    """The gateway's admin API (gateway/admin.py)."""

    def __init__(self, url: str, key: str, transport: httpx.BaseTransport | None = None) -> None:
        self.client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=180,
            transport=transport,
        )

    def _call(self, method: str, path: str, body: dict[str, str] | None = None) -> Any:
        try:
            r = self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise PromoteError(f"gateway admin API {path}: {exc!r}") from None
        if r.status_code >= 300:
            raise PromoteError(f"gateway admin API {method} {path}: HTTP {r.status_code} {r.text}")
        return r.json()

    def status_of(self, name: str) -> Status | None:
        for a in self._call("GET", "/admin/adapters")["adapters"]:
            if a["name"] == name:
                return Status(a["status"])
        return None

    def register(self, name: str, status: Status) -> Any:
        return self._call("POST", "/admin/adapters", {"name": name, "status": status.value})

    def set_status(self, name: str, status: Status) -> Any:
        return self._call("POST", f"/admin/adapters/{name}/promote", {"status": status.value})

    def close(self) -> None:
        self.client.close()


def _failed(outcome: Any) -> list[str]:
    replicas = outcome.get("replicas", {}) if isinstance(outcome, dict) else {}
    return [f"{url}: {r}" for url, r in replicas.items() if str(r).startswith("error")]


def promote_via_gateway(
    source: Path, adapters_dir: Path, archive: Path, api: AdminAPI, to: Status
) -> Promotion:
    name = read_manifest(source).name
    previous = api.status_of(name)
    if previous in (Status.SHADOW, Status.ACTIVE):
        api.set_status(name, Status.CANDIDATE)
    promo = install(source, adapters_dir, archive)
    if previous is not None:
        promo.steps.insert(0, f"set the registered {name!r} ({previous.value}) to candidate")
    try:
        api.register(name, Status.CANDIDATE)
        promo.steps.append(f"registered {name!r} through the admin API (sha256 verified)")
        outcome = api.set_status(name, to)
        if failed := _failed(outcome):
            raise PromoteError(f"loading failed on {failed}")
        promo.steps.append(f"set {name!r} to {to.value}: {outcome.get('replicas')}")
    except PromoteError as exc:
        _rollback(promo, api, previous)
        raise PromoteError(f"{exc}; rolled back: {'; '.join(promo.steps)}") from None
    promo.status = to
    return promo


def _rollback(promo: Promotion, api: AdminAPI, previous: Status | None) -> None:
    # Not registered (or the gateway is gone): nothing is loaded under the new files.
    with contextlib.suppress(PromoteError):
        api.set_status(promo.name, Status.CANDIDATE)
    if promo.archived is not None:
        shutil.rmtree(promo.target)
        shutil.move(str(promo.archived), str(promo.target))
        promo.steps.append(f"restored {promo.target}")
        if previous is not None:
            api.register(promo.name, previous)
            promo.steps.append(f"re-registered the previous {promo.name!r} as {previous.value}")


def promote_direct(
    source: Path, adapters_dir: Path, archive: Path, to: Status, vllm_url: str | None
) -> Promotion:
    promo = install(source, adapters_dir, archive)
    update(promo.target, status=to)
    promo.status = to
    promo.steps.append(f"manifest status {to.value}")
    if vllm_url:
        VLLMClient(vllm_url).load_adapter(promo.name, promo.target)
        promo.steps.append(f"loaded {promo.name!r} into vLLM at {vllm_url}")
    return promo
