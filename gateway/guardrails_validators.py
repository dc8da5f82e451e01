"""The gateway's Guardrails AI validators: PII, credentials and canary leaks, all local.

Registered in Guardrails' own registry, so they are used like any Guardrails validator (and a
``Guard`` outside the gateway can use them too). Each is a thin adapter over the detector of
the matching gateway check, so both paths find the same things:

- ``gateway/pii`` (:func:`gateway.checks.pii.find_pii`): args ``entities``, ``phone_regions``;
  fix value: the text with each entity masked (``<EMAIL>``, ``<PHONE>`` ...).
- ``gateway/secrets`` (:func:`gateway.checks.secrets.find_secrets`): args ``detectors``,
  ``min_entropy``; fix value: the text with each credential masked as ``<SECRET>``.
- ``gateway/canary`` (:func:`gateway.checks.canary.leak_reason`): fails on any gateway-shaped
  canary token and on the request's own canary (``metadata["canary"]``) however it is spaced;
  no fix value (a leaked system prompt is not fixed by masking its marker).

Error messages name what was found, never the values. Import only through
:mod:`gateway.guardrails_ai`, which makes Guardrails local-only first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from guardrails.classes.validation.validation_result import (
    ErrorSpan,
    FailResult,
    PassResult,
    ValidationResult,
)
from guardrails.validator_base import Validator, register_validator

from gateway.checks.canary import leak_reason
from gateway.checks.pii import ALL_ENTITIES, Entity, find_pii, mask_pii
from gateway.checks.secrets import ALL_DETECTORS, Detector, find_secrets, mask_secrets
from gateway.checks.spans import count_kinds


def _found(
    what: str, matches: Sequence[tuple[str, int, int]], masked: Callable[[], str]
) -> ValidationResult:
    """Pass without matches; else fail naming the kinds found, with their spans and a fix."""
    if not matches:
        return PassResult()
    return FailResult(
        error_message=f"{what} found: {count_kinds(matches)}",
        fix_value=masked(),
        error_spans=[ErrorSpan(start=s, end=e, reason=kind) for kind, s, e in matches],
    )


@register_validator(name="gateway/pii", data_type="string")
class GatewayPII(Validator):  # type: ignore[misc]  # guardrails is untyped
    """Personal data: emails, phone numbers, payment cards, IBANs, US SSNs."""

    def __init__(
        self,
        entities: Sequence[Entity] = ALL_ENTITIES,
        phone_regions: Sequence[str] = ("US",),
        **kwargs: Any,
    ) -> None:
        unknown = [e for e in entities if e not in ALL_ENTITIES]
        if unknown:
            raise ValueError(f"unknown entities {unknown}; known: {', '.join(ALL_ENTITIES)}")
        super().__init__(entities=list(entities), phone_regions=list(phone_regions), **kwargs)
        self.entities = tuple(entities)
        self.phone_regions = tuple(phone_regions)

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        text = str(value)
        matches = find_pii(text, self.entities, self.phone_regions)
        return _found("personal data", matches, lambda: mask_pii(text, matches))


@register_validator(name="gateway/secrets", data_type="string")
class GatewaySecrets(Validator):  # type: ignore[misc]
    """Credentials: cloud keys, tokens, private keys, keyword-marked high-entropy secrets."""

    def __init__(
        self,
        detectors: Sequence[Detector] = ALL_DETECTORS,
        min_entropy: float = 3.5,
        **kwargs: Any,
    ) -> None:
        unknown = [d for d in detectors if d not in ALL_DETECTORS]
        if unknown:
            raise ValueError(f"unknown detectors {unknown}; known: {', '.join(ALL_DETECTORS)}")
        super().__init__(detectors=list(detectors), min_entropy=min_entropy, **kwargs)
        self.detectors = tuple(detectors)
        self.min_entropy = float(min_entropy)

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        text = str(value)
        matches = find_secrets(text, self.detectors, self.min_entropy)
        return _found("credential", matches, lambda: mask_secrets(text, matches))


@register_validator(name="gateway/canary", data_type="string")
class GatewayCanary(Validator):  # type: ignore[misc]
    """A leaked canary token: the system prompt was extracted."""

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        token = metadata.get("canary")
        reason = leak_reason(str(value), token if isinstance(token, str) else None)
        if reason is None:
            return PassResult()
        return FailResult(error_message=reason)
