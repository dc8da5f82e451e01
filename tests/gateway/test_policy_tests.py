from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.pipeline import Action
from gateway.policy import parse_policy
from gateway.policy_tests import Case, load_tests, policy_files, policy_for, run_case, run_file

pytestmark = pytest.mark.anyio

POLICY = """version: 1
name: p
input:
  - id: words
    check: deny_list
    settings:
      patterns: [{name: w, regex: forbidden}]
  - id: watch
    check: deny_list
    action: shadow
    settings:
      patterns: [{name: w, regex: watched}]
output:
  - id: mask
    check: pii
"""


def case(**fields: object) -> Case:
    return Case.model_validate({"name": "c", **fields})


async def test_a_matching_case_passes() -> None:
    policy = parse_policy(POLICY)
    c = case(
        messages=[{"content": "a forbidden word"}], expect={"action": "block", "rules": ["words"]}
    )
    result = await run_case(policy, c)
    assert result.passed and result.action is Action.BLOCK and result.rules == ("words",)


async def test_every_kind_of_mismatch_is_reported() -> None:
    policy = parse_policy(POLICY)
    c = case(
        messages=[{"content": "forbidden and watched"}],
        expect={"action": "allow", "rules": ["watch"], "route": "x", "contains": ["zzz"]},
    )
    result = await run_case(policy, c)
    assert not result.passed
    text = "\n".join(result.problems)
    assert "action: expected allow, got block" in text
    assert "rules fired: expected [watch], got [words]" in text  # block stops before 'watch'
    assert "route: expected x, got None" in text
    assert "should contain 'zzz'" in text


async def test_shadow_rules_count_as_fired() -> None:
    policy = parse_policy(POLICY)
    c = case(messages=[{"content": "watched"}], expect={"action": "shadow", "rules": ["watch"]})
    assert (await run_case(policy, c)).passed


async def test_output_cases_run_the_output_pipeline_and_see_redactions() -> None:
    policy = parse_policy(POLICY)
    c = case(
        stage="output",
        messages=[{"role": "assistant", "content": "write to a@b.io"}],
        expect={
            "action": "redact",
            "rules": ["mask"],
            "contains": ["<EMAIL>"],
            "not_contains": ["a@b.io"],
        },
    )
    assert (await run_case(policy, c)).passed


def test_output_cases_must_be_answers() -> None:
    with pytest.raises(ValueError, match="assistant"):
        case(stage="output", messages=[{"content": "x"}], expect={"action": "allow"})


def test_test_files_are_strict_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "p.tests.yaml"
    path.write_text(
        "cases:\n  - name: a\n    messages: [{content: x}]\n    expect: {action: blok}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_tests(path)
    assert f"{path}:4" in info.value.message and "expect.action" in info.value.message
    path.write_text(
        "cases:\n  - {name: a, messages: [{content: x}], expect: {action: allow}}\n"
        "  - {name: a, messages: [{content: y}], expect: {action: allow}}\n"
    )
    with pytest.raises(ConfigError, match="repeated: a"):
        load_tests(path)


async def test_a_file_finds_its_policy_by_name_or_by_key(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    tests = tmp_path / "p.tests.yaml"
    tests.write_text("cases:\n  - {name: a, messages: [{content: hi}], expect: {action: allow}}\n")
    assert policy_for(tests, load_tests(tests)) == tmp_path / "p.yaml"
    policy_path, results = await run_file(tests)
    assert policy_path == tmp_path / "p.yaml" and [r.passed for r in results] == [True]
    other = tmp_path / "extra.tests.yaml"
    other.write_text(
        "policy: p.yaml\n"
        "cases:\n  - {name: a, messages: [{content: hi}], expect: {action: allow}}\n"
    )
    assert policy_for(other, load_tests(other)) == tmp_path / "p.yaml"
    assert policy_files(tmp_path) == [tmp_path / "p.yaml"]
