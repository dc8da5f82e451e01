from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from gateway.policy_schema import policy_json_schema, render_schema
from gateway.policy_tests import policy_files
from tests.conftest import REPO

SCHEMA = REPO / "policies" / "schema.json"


def test_the_committed_schema_is_up_to_date() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == render_schema(), (
        "policies/schema.json is stale: run 'gateway policy schema --write policies/schema.json'"
    )


@pytest.mark.parametrize("path", policy_files(REPO / "policies"), ids=lambda p: p.name)
def test_shipped_policies_validate_against_the_schema(path: object) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]  # type: ignore[attr-defined]
    assert errors == []


def test_the_schema_types_each_checks_settings() -> None:
    schema = policy_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = {
        "version": 1,
        "name": "p",
        "input": [{"id": "a", "check": "pii", "settings": {"entities": ["email"]}}],
    }
    assert list(validator.iter_errors(good)) == []
    typo = {"name": "p", "input": [{"id": "a", "check": "pii", "settings": {"entity": ["email"]}}]}
    assert any("entity" in e.message for e in validator.iter_errors(typo))
    unknown = {"name": "p", "input": [{"id": "a", "check": "nope"}]}
    assert any("nope" in e.message for e in validator.iter_errors(unknown))
    extra = {"name": "p", "outputs": []}
    assert any("outputs" in e.message for e in validator.iter_errors(extra))
