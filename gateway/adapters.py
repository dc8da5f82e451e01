"""The adapter registry and the model catalog clients choose from.

``adapters/<name>/`` holds a PEFT adapter (``adapter_config.json`` + weights) and a
``manifest.yaml`` (name, base model, description). Clients name adapters; the server maps names
to folders. Only registered names resolve: a client can never make vLLM load a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.auth import Principal
from gateway.errors import ConfigError, ModelNotFound, PermissionDenied

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
MANIFEST = "manifest.yaml"


class AdapterManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    base_model: str = Field(min_length=1)
    description: str = ""


@dataclass(frozen=True, slots=True)
class Adapter:
    manifest: AdapterManifest
    path: Path

    @property
    def name(self) -> str:
        return self.manifest.name


def load_adapter(folder: Path) -> Adapter:
    manifest_path = folder / MANIFEST
    try:
        data = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
        manifest = AdapterManifest.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"invalid adapter manifest {manifest_path}: {exc}") from None
    if manifest.name != folder.name:
        raise ConfigError(
            f"{manifest_path}: name {manifest.name!r} must match folder {folder.name!r}"
        )
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"{folder}: missing adapter_config.json (a PEFT adapter folder)")
    if not any((folder / w).is_file() for w in ("adapter_model.safetensors", "adapter_model.bin")):
        raise ConfigError(f"{folder}: missing adapter weights (adapter_model.safetensors)")
    return Adapter(manifest, folder.resolve())


def load_adapters(root: Path, base_model: str) -> dict[str, Adapter]:
    """Every adapter folder under ``root`` (the configured adapters directory)."""
    adapters: dict[str, Adapter] = {}
    if not root.is_dir():
        return adapters
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).exists()):
        adapter = load_adapter(folder)
        if adapter.manifest.base_model != base_model:
            raise ConfigError(
                f"adapter {adapter.name!r} is for base model {adapter.manifest.base_model!r}, "
                f"but this gateway serves {base_model!r}"
            )
        adapters[adapter.name] = adapter
    return adapters


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A public model name resolved to what the upstream serves."""

    public: str
    upstream: str
    adapter: Adapter | None


class Catalog:
    """The base model plus registered adapters, each with a public name."""

    def __init__(self, base_model: str, adapters: dict[str, Adapter]) -> None:
        if base_model in adapters:
            raise ConfigError(f"adapter name {base_model!r} collides with the base model")
        self.base_model = base_model
        self.adapters = dict(adapters)

    def names(self) -> list[str]:
        return [self.base_model, *sorted(self.adapters)]

    def resolve(self, model: str, principal: Principal) -> ModelRoute:
        if model == self.base_model:
            route = ModelRoute(model, model, None)
        elif model in self.adapters and _NAME.match(model):
            route = ModelRoute(model, model, self.adapters[model])
        else:
            raise ModelNotFound(f"the model {model!r} does not exist", param="model")
        if not principal.may_use(route.public):
            raise PermissionDenied(f"this API key may not use the model {model!r}", param="model")
        return route

    def visible_to(self, principal: Principal) -> list[str]:
        return [n for n in self.names() if principal.may_use(n)]
