"""Guardrails AI stays local whatever the user's ~/.guardrailsrc says."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from guardrails import OnFailAction
from guardrails.settings import settings as gr_settings
from guardrails.utils.hub_telemetry_utils import HubTelemetry

import gateway.guardrails_ai as gr
from gateway.pipeline import Action


def test_a_guardrailsrc_asking_for_metrics_and_remote_inference_is_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".guardrailsrc").write_text(
        "id=someone\ntoken=hub-token\nenable_metrics=true\nuse_remote_inferencing=true\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(gr, "_ready", False)
    monkeypatch.setattr(gr_settings, "_rc", None)
    monkeypatch.setattr(HubTelemetry, "_instance", None)

    validator = gr.build_validator("gateway/pii", "fix", {})

    assert gr_settings.rc.enable_metrics is False
    assert gr_settings.rc.token is None
    assert validator._disable_telemetry is True
    assert validator.use_local is True
    assert HubTelemetry._instance is None  # nothing set up to export to Guardrails' Hub


def test_every_offered_on_fail_is_guardrails_own_and_maps_to_an_action() -> None:
    offered = set(get_args(gr.OnFail))
    assert set(gr.ON_FAIL_ACTIONS) == offered
    assert offered <= {a.value for a in OnFailAction}
    assert offered.isdisjoint({"reask", "fix_reask", "custom"})  # need the model or run code
    assert set(gr.ON_FAIL_ACTIONS.values()) == {Action.BLOCK, Action.REDACT, Action.FLAG}


def test_validate_returns_guardrails_failure_and_fix() -> None:
    validator = gr.build_validator("gateway/pii", "fix", {"entities": ["email"]})
    assert gr.validate(validator, "no personal data here", {}) is None
    failure = gr.validate(validator, "write to jane.doe@example.com", {})
    assert failure == gr.Failure("personal data found: 1 email", "write to <EMAIL>")


def test_the_gateways_validators_are_in_guardrails_registry() -> None:
    assert {"gateway/pii", "gateway/secrets", "gateway/canary"} <= set(gr.known_validators())
