"""Policy binding: which policy a request gets, by API key and by model.

A bindings file (``GATEWAY_POLICY_BINDINGS_FILE``, e.g. ``policies/bindings.yaml``) maps API
key names and public model names (the base model or an adapter) to policy files, given
relative to the bindings file's folder::

    version: 1
    keys:                      # API key name -> policy file
      support-bot: customer-support.yaml
    models:                    # public model / adapter name -> policy file
      support-assistant: customer-support.yaml
      smollm2-135m-instruct: strict.yaml

Precedence: the key's binding, else the requested model's, else the default policy
(``GATEWAY_POLICY_FILE``). A key binding wins because a key names who is calling (a team with
its own contract), while a model binding names what is called. The policy is chosen once, from
the model the client asked for, and kept for the whole request (a ``route`` action does not
change it).

Every bound file is loaded at start (a missing or invalid one fails the start, listing the
policy files that exist) and hot-reloaded like the default (:mod:`gateway.policy_watch`).
Key and model names are not checked against the key store or the adapter catalog: keys and
adapters come and go at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import ConfigError
from gateway.policy import Policy, load_policy, load_strict_yaml
from gateway.policy_tests import policy_files
from gateway.state import PolicyHolder


class BindingsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    keys: dict[str, str] = Field(default_factory=dict, description="API key name -> policy file")
    models: dict[str, str] = Field(
        default_factory=dict, description="public model or adapter name -> policy file"
    )


def load_bindings_file(path: Path) -> BindingsFile:
    return load_strict_yaml(path, BindingsFile, "policy bindings")


@dataclass(frozen=True, slots=True)
class PolicyBindings:
    """Bound policies, each behind its own holder (swapped by its own reloader)."""

    holders: dict[Path, PolicyHolder] = field(default_factory=dict)
    keys: dict[str, Path] = field(default_factory=dict)
    models: dict[str, Path] = field(default_factory=dict)

    def select(self, key_name: str, model: str) -> Policy | None:
        """The bound policy for this key and model (key wins), or None for the default."""
        path = self.keys.get(key_name) or self.models.get(model)
        return self.holders[path].current if path is not None else None


def load_bindings(
    path: Path | None, wrap: Callable[[Policy], Policy] = lambda p: p
) -> PolicyBindings:
    """Read the bindings file and load every policy it names (``wrap`` adds metrics)."""
    if path is None:
        return PolicyBindings()
    spec = load_bindings_file(path)
    folder = path.parent
    holders: dict[Path, PolicyHolder] = {}

    def resolve(name: str, where: str) -> Path:
        target = folder / name
        if target not in holders:
            if not target.is_file():
                known = ", ".join(p.name for p in policy_files(folder))
                raise ConfigError(
                    f"{path}: {where}: unknown policy file {name!r}; "
                    f"policies in {folder}: {known or '(none)'}"
                )
            holders[target] = PolicyHolder(wrap(load_policy(target)))
        return target

    keys = {k: resolve(v, f"keys.{k}") for k, v in spec.keys.items()}
    models = {m: resolve(v, f"models.{m}") for m, v in spec.models.items()}
    return PolicyBindings(holders, keys, models)
