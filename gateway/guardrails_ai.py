"""Guardrails AI validators, run locally: no Hub token, no telemetry, no remote inference.

Guardrails keeps a registry of validator classes by name (``@register_validator``). The gateway
registers its own (:mod:`gateway.guardrails_validators`: ``gateway/pii``, ``gateway/secrets``,
``gateway/canary``); a policy may name further modules to import first, e.g. a team's own
validators or a Hub validator installed as a package. Nothing is discovered by scanning, and an
unknown name fails at load with the list of known ones.

Local only, whatever ``~/.guardrailsrc`` says: Guardrails' settings are replaced before any
validator exists (``enable_metrics`` off, so no validator starts Guardrails' OpenTelemetry
export to its Hub; ``use_remote_inferencing`` off, so validators with a model run it here). The
gateway never builds a ``Guard``: a ``Guard`` re-reads ``~/.guardrailsrc`` when it is made.

``import guardrails`` takes several seconds (it pulls litellm and langchain-core): it happens
when the first policy using a validator loads, never in a request and never for policies that
do not use one.

A rule's ``args`` must be arguments the validator's constructor names: Guardrails validators
take ``**kwargs`` and would silently keep a misspelt one.

Guardrails' ``on_fail`` maps onto the gateway's actions (:data:`ON_FAIL_ACTIONS`). ``reask``
and ``fix_reask`` need a call back to the model and ``custom`` runs arbitrary code: not offered.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.errors import ConfigError
from gateway.pipeline import Action

OnFail = Literal["exception", "fix", "filter", "refrain", "noop"]
ON_FAIL_ACTIONS: Mapping[OnFail, Action] = {
    "exception": Action.BLOCK,
    "fix": Action.REDACT,  # the text is replaced by the validator's fix_value
    "filter": Action.REDACT,  # the text is dropped (replaced by "")
    "refrain": Action.BLOCK,
    "noop": Action.FLAG,
}

_ready = False


def _local_only() -> None:
    """Import Guardrails with its settings forced local, and register the gateway's validators."""
    global _ready
    if _ready:
        return
    from guardrails.classes.rc import RC
    from guardrails.settings import settings

    settings.rc = RC(id=None, token=None, enable_metrics=False, use_remote_inferencing=False)
    import gateway.guardrails_validators  # noqa: F401  (registers gateway/*)

    _ready = True


def known_validators(modules: Sequence[str] = ()) -> dict[str, type[Any]]:
    """Guardrails' validator registry after importing ``modules`` (dotted names)."""
    _local_only()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any import failure is a configuration error
            raise ConfigError(f"cannot import validator module {name!r}: {exc}") from None
    from guardrails.validator_base import validators_registry

    registry: dict[str, type[Any]] = dict(validators_registry)
    return registry


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed validation: Guardrails' message and, for ``fix``, the replacement text."""

    message: str
    fix_value: str | None


def build_validator(
    name: str, on_fail: OnFail, args: Mapping[str, Any], modules: Sequence[str] = ()
) -> Any:
    """An instance of the registered validator ``name``; bad names or arguments fail here."""
    registry = known_validators(modules)
    try:
        cls = registry[name]
    except KeyError:
        raise ConfigError(
            f"unknown Guardrails validator {name!r}; known validators: "
            f"{', '.join(sorted(registry)) or '(none)'}"
        ) from None
    accepted = _named_parameters(cls)
    unknown = sorted(set(args) - accepted)
    if unknown:
        raise ConfigError(
            f"invalid args for Guardrails validator {name!r}: unknown {', '.join(unknown)}; "
            f"it accepts: {', '.join(sorted(accepted)) or '(none)'}"
        )
    try:
        return cls(on_fail=on_fail, use_local=True, **dict(args))
    except Exception as exc:  # a constructor's complaint about its arguments
        raise ConfigError(f"invalid args for Guardrails validator {name!r}: {exc}") from None


def _named_parameters(cls: type[Any]) -> set[str]:
    """The arguments a validator's constructor names (its ``**kwargs`` would swallow typos)."""
    params = inspect.signature(cls.__init__).parameters.values()
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named - {"self", "on_fail"}


def validate(validator: Any, text: str, metadata: Mapping[str, Any]) -> Failure | None:
    """Run one validator on ``text``: None when it passes, else the failure."""
    from guardrails.classes.validation.validation_result import FailResult, PassResult

    result = validator.validate(text, dict(metadata))
    if isinstance(result, PassResult):
        return None
    if isinstance(result, FailResult):
        fix = result.fix_value if isinstance(result.fix_value, str) else None
        return Failure(str(result.error_message or "validation failed"), fix)
    raise TypeError(f"validator {validator.rail_alias!r} returned {type(result).__name__}")
