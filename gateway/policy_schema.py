"""The policy file's JSON Schema, for editors (``gateway policy schema``).

Generated from the same pydantic models the loader validates with, so it cannot drift from them
by hand; ``policies/schema.json`` is the committed copy and a test fails when it is stale. Each
rule's ``settings`` are typed by its ``check``: one ``if check == NAME then settings: NAME's
Settings`` clause per registered check, so an editor flags a misspelled setting as you type.

Point an editor at it with a first line of ``# yaml-language-server: $schema=schema.json``
(VS Code's YAML extension, JetBrains, Neovim's yamlls).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.checks import check_class, known_checks
from gateway.policy import PolicyFile

SCHEMA_ID = "https://guarded-gateway.local/schemas/policy-v1.json"


def policy_json_schema() -> dict[str, Any]:
    names = known_checks()
    settings_models: list[type[BaseModel]] = [check_class(n).Settings for n in names]
    keys, defs = models_json_schema(
        [(PolicyFile, "validation"), *((m, "validation") for m in settings_models)],
        ref_template="#/$defs/{model}",
    )
    # pydantic names each Settings after its module path; name them after the check instead.
    renames = {
        _def_name(keys[(model, "validation")]): f"{name}_settings"
        for name, model in zip(names, settings_models, strict=True)
    }
    all_defs: dict[str, Any] = {
        renames.get(k, k): _renamed(v, renames) for k, v in defs["$defs"].items()
    }
    root = all_defs.pop(_def_name(keys[(PolicyFile, "validation")]))
    rule = all_defs["RuleSpec"]
    rule["properties"]["check"]["enum"] = names
    rule["allOf"] = [
        {
            "if": {"properties": {"check": {"const": name}}, "required": ["check"]},
            "then": {"properties": {"settings": {"$ref": f"#/$defs/{name}_settings"}}},
        }
        for name in names
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **root,
        "$defs": all_defs,
    }


def _def_name(ref: dict[str, Any]) -> str:
    name: str = ref["$ref"].rsplit("/", 1)[1]
    return name


def _renamed(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {k: _renamed(v, renames) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = "#/$defs/" + renames.get(ref[8:], ref[8:])
        return out
    if isinstance(node, list):
        return [_renamed(v, renames) for v in node]
    return node


def render_schema() -> str:
    """The schema as committed: stable key order, two-space indent, trailing newline."""
    return json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n"
