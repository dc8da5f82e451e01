"""The adapter registry and the model catalog clients choose from.

``adapters/<name>/`` holds a PEFT adapter (``adapter_config.json`` + weights) and a
``manifest.yaml``: the registry is these manifests, and it is the source of truth. Clients name
adapters; the server maps names to folders. Only registered names resolve: a client can never
make vLLM load a path.

A manifest::

    name: support-assistant            # = the folder's name; [a-z0-9][a-z0-9._-]{0,63}
    base_model: smollm2-135m-instruct
    description: ...
    path: .                            # the PEFT folder, relative to this folder (inside it)
    sha256: <hex of the weights file>  # checked at every load; a mismatch refuses the adapter
    created_by: finetune train (run 2026-11-23T10:00Z)
    evaluation: {refusal_rate: 0.97}   # free-form figures
    status: active                     # candidate | shadow | active | retired

What the status means for serving (docs/fleet.md):

- ``candidate``: registered and verified, not loaded, not served (404 to clients).
- ``shadow``: loaded on every replica (warm, so promotion is instant) but hidden: not in
  ``/v1/models`` and served only to keys that name it explicitly (``"*"`` does not include it),
  e.g. an evaluation key.
- ``active``: loaded on every replica, served to every key whose allow-list permits it.
- ``retired``: kept on disk for the record, unloaded, never served.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from gateway.auth import Principal
from gateway.errors import ConfigError, ModelNotFound, PermissionDenied
from gateway.hashing import file_sha256

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
MANIFEST = "manifest.yaml"
CONFIG = "adapter_config.json"
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # vLLM prefers the first


class Status(StrEnum):
    CANDIDATE = "candidate"
    SHADOW = "shadow"
    ACTIVE = "active"
    RETIRED = "retired"


LOADED = frozenset({Status.SHADOW, Status.ACTIVE})
"""The statuses kept loaded on every replica (what the reconcile loop re-applies)."""


def valid_name(name: str) -> bool:
    """A registrable adapter name: no slashes, no leading dot, so never a path."""
    return bool(_NAME.match(name))


class AdapterManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    base_model: str = Field(min_length=1)
    description: str = ""
    path: str = Field(".", description="the PEFT folder, relative to the manifest's folder")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the weights file")
    created_by: str = Field(min_length=1)
    evaluation: dict[str, JsonValue] = Field(default_factory=dict)
    status: Status = Status.CANDIDATE

    @field_validator("path")
    @classmethod
    def _inside(cls, v: str) -> str:
        p = PurePosixPath(v)
        if p.is_absolute() or ".." in p.parts or "\\" in v:
            raise ValueError("path must be relative and stay inside the adapter's folder")
        return v


@dataclass(frozen=True, slots=True)
class Adapter:
    manifest: AdapterManifest
    folder: Path  # the folder holding manifest.yaml (resolved)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def status(self) -> Status:
        return self.manifest.status

    @property
    def path(self) -> Path:
        """The PEFT folder vLLM loads."""
        return (self.folder / self.manifest.path).resolve()

    def upstream_path(self, upstream_dir: Path | None) -> str:
        """Where the upstream sees the PEFT folder (``upstream_dir``: a shared volume)."""
        if upstream_dir is None:
            return str(self.path)
        return str(upstream_dir / self.folder.name / self.manifest.path)


def weights_file(peft_dir: Path) -> Path:
    for name in WEIGHTS:
        if (peft_dir / name).is_file():
            return peft_dir / name
    raise ConfigError(f"{peft_dir}: missing adapter weights ({' or '.join(WEIGHTS)})")


def weights_sha256(peft_dir: Path) -> str:
    return file_sha256(weights_file(peft_dir))


def read_manifest(folder: Path) -> AdapterManifest:
    manifest_path = folder / MANIFEST
    try:
        data = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
        return AdapterManifest.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"invalid adapter manifest {manifest_path}: {exc}") from None


def load_adapter(folder: Path) -> Adapter:
    """Read and verify one adapter folder: manifest, PEFT files, sha256 of the weights."""
    manifest = read_manifest(folder)
    if manifest.name != folder.name:
        raise ConfigError(
            f"{folder / MANIFEST}: name {manifest.name!r} must match folder {folder.name!r}"
        )
    adapter = Adapter(manifest, folder.resolve())
    if not adapter.path.is_relative_to(adapter.folder):
        raise ConfigError(f"{folder / MANIFEST}: path leaves the adapter's folder")
    if not (adapter.path / CONFIG).is_file():
        raise ConfigError(f"{adapter.path}: missing {CONFIG} (a PEFT adapter folder)")
    actual = weights_sha256(adapter.path)
    if actual != manifest.sha256:
        raise ConfigError(
            f"adapter {manifest.name!r}: weights sha256 {actual} does not match the manifest's "
            f"{manifest.sha256}; refusing to load it"
        )
    return adapter


def load_adapters(root: Path, base_model: str) -> dict[str, Adapter]:
    """Every adapter folder under ``root`` (the configured adapters directory)."""
    adapters: dict[str, Adapter] = {}
    if not root.is_dir():
        return adapters
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).exists()):
        adapter = load_adapter(folder)
        check_base_model(adapter, base_model)
        adapters[adapter.name] = adapter
    return adapters


def check_base_model(adapter: Adapter, base_model: str) -> None:
    if adapter.manifest.base_model != base_model:
        raise ConfigError(
            f"adapter {adapter.name!r} is for base model {adapter.manifest.base_model!r}, "
            f"but this gateway serves {base_model!r}"
        )


def write_manifest(folder: Path, manifest: AdapterManifest | dict[str, Any]) -> AdapterManifest:
    """Write ``folder/manifest.yaml`` atomically and return what was written.

    The stable entry point for tools (``finetune``) and the admin API. A mapping without
    ``sha256`` gets the hash of the weights now in the folder; a given ``sha256`` must match
    them. The name must be the folder's name.
    """
    data = manifest.model_dump(mode="json") if isinstance(manifest, AdapterManifest) else manifest
    data = dict(data)
    peft_dir = (folder / str(data.get("path", "."))).resolve()
    if "sha256" not in data and peft_dir.is_relative_to(folder.resolve()):
        data["sha256"] = weights_sha256(peft_dir)
    try:
        checked = AdapterManifest.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid adapter manifest for {folder}: {exc}") from None
    if checked.name != folder.name:
        raise ConfigError(f"manifest name {checked.name!r} must match folder {folder.name!r}")
    if weights_sha256(peft_dir) != checked.sha256:
        raise ConfigError(f"{folder}: sha256 does not match the weights in {peft_dir}")
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(
        yaml.safe_dump(checked.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
    )
    tmp.replace(folder / MANIFEST)
    return checked


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A public model name resolved to what the upstream serves."""

    public: str
    upstream: str
    adapter: Adapter | None


class Catalog:
    """The base model plus registered adapters, each with a public name and a status.

    Names match exactly: no aliases, no case folding, so an allow-list cannot be bypassed by
    spelling a name differently. The registry changes at run time only through :meth:`put`
    (the admin API), one whole adapter at a time.
    """

    def __init__(self, base_model: str, adapters: dict[str, Adapter]) -> None:
        if base_model in adapters:
            raise ConfigError(f"adapter name {base_model!r} collides with the base model")
        self.base_model = base_model
        self.adapters = dict(adapters)

    def put(self, adapter: Adapter) -> None:
        if adapter.name == self.base_model:
            raise ConfigError(f"adapter name {adapter.name!r} collides with the base model")
        self.adapters[adapter.name] = adapter

    def desired(self) -> dict[str, Adapter]:
        """The adapters every replica should have loaded (shadow and active)."""
        return {n: a for n, a in self.adapters.items() if a.status in LOADED}

    def names(self) -> list[str]:
        """Publicly listed names: the base model and active adapters."""
        active = (n for n, a in self.adapters.items() if a.status is Status.ACTIVE)
        return [self.base_model, *sorted(active)]

    def resolve(self, model: str, principal: Principal) -> ModelRoute:
        adapter = self.adapters.get(model) if valid_name(model) else None
        if model == self.base_model:
            route = ModelRoute(model, model, None)
        elif adapter is not None and _servable(adapter, principal):
            route = ModelRoute(model, model, adapter)
        else:
            raise ModelNotFound(f"the model {model!r} does not exist", param="model")
        if not principal.may_use(route.public):
            raise PermissionDenied(f"this API key may not use the model {model!r}", param="model")
        return route

    def visible_to(self, principal: Principal) -> list[str]:
        shadow = sorted(
            n
            for n, a in self.adapters.items()
            if a.status is Status.SHADOW and n in principal.models
        )
        return [n for n in self.names() if principal.may_use(n)] + shadow


def _servable(adapter: Adapter, principal: Principal) -> bool:
    if adapter.status is Status.ACTIVE:
        return True
    return adapter.status is Status.SHADOW and adapter.name in principal.models
