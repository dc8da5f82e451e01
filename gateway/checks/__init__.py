"""The check registry: a name maps to a check class; unknown names fail at load.

Each check is a class with a nested pydantic ``Settings`` model (``extra="forbid"``) and an
async ``__call__(segments, ctx) -> Verdict``. Register with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.errors import ConfigError
from gateway.pipeline import Check

_REGISTRY: dict[str, type[Any]] = {}
C = TypeVar("C", bound=type[Any])


def register(name: str) -> Callable[[C], C]:
    def decorator(cls: C) -> C:
        if name in _REGISTRY:
            raise ConfigError(f"check {name!r} registered twice")
        _REGISTRY[name] = cls
        return cls

    return decorator


def known_checks() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def check_class(name: str) -> type[Any]:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown check {name!r}; known checks: {', '.join(sorted(_REGISTRY))}"
        ) from None


def build_check(name: str, settings: Mapping[str, Any]) -> Check:
    cls = check_class(name)
    try:
        settings_model: type[BaseModel] = cls.Settings
        parsed = settings_model.model_validate(dict(settings))
    except ValidationError as exc:
        raise ConfigError(f"invalid settings for check {name!r}: {exc}") from None
    check: Check = cls(parsed)
    return check


def _load_builtins() -> None:
    # Explicit list: importing a module registers its checks. No directory scanning.
    from gateway.checks import (  # noqa: F401
        adversarial_suffix,
        canary,
        deny_list,
        guardrails_ai,
        injection,
        injection_lexical,
        injection_semantic,
        nemo_rails,
        pii,
        secrets,
        size_limit,
        unicode_smuggling,
    )
