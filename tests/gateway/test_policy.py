from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.policy import load_policy, parse_policy

REPO = Path(__file__).resolve().parents[2]


def test_default_policy_loads_and_builds_pipelines() -> None:
    policy = load_policy(REPO / "policies" / "default.yaml")
    assert policy.name == "default"
    ids = [r.id for r in policy.input.rules]
    assert "size" in ids and "classic-injection" in ids


def test_a_typo_is_an_error_with_its_line_number() -> None:
    text = "version: 1\nname: p\ninput:\n  - id: a\n    check: size_limit\n    acton: block\n"
    with pytest.raises(ConfigError) as info:
        parse_policy(text, "p.yaml")
    assert "p.yaml:6" in info.value.message and "acton" in info.value.message


def test_unknown_check_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy("name: p\ninput:\n  - id: a\n    check: nope\n")
    assert "unknown check 'nope'" in info.value.message and "deny_list" in info.value.message


def test_unknown_check_setting_is_an_error() -> None:
    text = "name: p\ninput:\n  - id: a\n    check: size_limit\n    settings: {max_char: 3}\n"
    with pytest.raises(ConfigError, match="max_char"):
        parse_policy(text)


def test_route_needs_a_target_and_ids_are_unique() -> None:
    with pytest.raises(ConfigError, match="route"):
        parse_policy("name: p\ninput:\n  - {id: a, check: size_limit, action: route}\n")
    dup = (
        "name: p\ninput:\n  - {id: a, check: size_limit}\noutput:\n  - {id: a, check: size_limit}\n"
    )
    with pytest.raises(ConfigError, match="repeated: a"):
        parse_policy(dup)


def test_bad_regex_and_bad_yaml_fail_at_load() -> None:
    bad = (
        "name: p\ninput:\n  - id: a\n    check: deny_list\n    settings:\n"
        "      patterns: [{name: x, regex: '('}]\n"
    )
    with pytest.raises(ConfigError, match="regular expression"):
        parse_policy(bad)
    with pytest.raises(ConfigError, match="YAML"):
        parse_policy("name: [unclosed")
