"""Validators a security team might write, registered with Guardrails the documented way.

Imported by name through a rule's ``modules`` setting in tests/gateway/checks/test_guardrails_ai.py
(not collected by pytest itself).
"""

from __future__ import annotations

from typing import Any

from guardrails.classes.validation.validation_result import (
    FailResult,
    PassResult,
    ValidationResult,
)
from guardrails.validator_base import Validator, register_validator


@register_validator(name="tests/no-shouting", data_type="string")
class NoShouting(Validator):  # type: ignore[misc]
    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        if str(value).isupper():
            return FailResult(error_message="all capitals", fix_value=str(value).capitalize())
        return PassResult()


@register_validator(name="tests/no-digits", data_type="string")
def no_digits(value: Any, metadata: dict[str, Any]) -> ValidationResult:
    if any(c.isdigit() for c in str(value)):
        return FailResult(error_message="digits")
    return PassResult()


@register_validator(name="tests/echo-metadata", data_type="string")
class EchoMetadata(Validator):  # type: ignore[misc]
    """Always fails; its message is the metadata it was given."""

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        return FailResult(error_message=repr(sorted(metadata.items())))


@register_validator(name="tests/broken", data_type="string")
class Broken(Validator):  # type: ignore[misc]
    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        raise RuntimeError("validator crashed")
