from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.conftest import REPO

runner = CliRunner()
POLICIES = REPO / "policies"


def test_the_shipped_policies_lint_clean() -> None:
    result = runner.invoke(app, ["policy", "lint", str(POLICIES)])
    assert result.exit_code == 0, result.output
    for name in ("default", "customer-support", "strict"):
        assert f"policy '{name}'" in result.output
    assert "warn" not in result.output  # every shipped policy has a test file


def test_the_shipped_policies_pass_their_tests() -> None:
    result = runner.invoke(app, ["policy", "test", str(POLICIES)])
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


def test_a_mismatching_case_fails_the_run(copy: Path) -> None:
    tests = copy / "default.tests.yaml"
    text = tests.read_text()
    needle = "expect: {action: block, rules: [classic-injection]}"
    tests.write_text(text.replace(needle, "expect: {action: allow}", 1))
    result = runner.invoke(app, ["policy", "test", str(copy)])
    assert result.exit_code == 1
    assert "FAIL default.yaml: instruction override is blocked" in result.output
    assert "action: expected allow, got block" in result.output


def test_lint_reports_a_broken_policy_with_its_line(copy: Path) -> None:
    path = copy / "strict.yaml"
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "check: secrets")
    lines.insert(at + 1, "    acton: block")
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["policy", "lint", str(copy)])
    assert result.exit_code == 1
    assert f"strict.yaml:{at + 2}" in result.output and "acton" in result.output
    tests = runner.invoke(app, ["policy", "test", str(copy)])
    assert tests.exit_code == 1 and "FAIL" in tests.output


def test_empty_directories_are_an_error(tmp_path: Path) -> None:
    assert runner.invoke(app, ["policy", "lint", str(tmp_path)]).exit_code == 2
    assert runner.invoke(app, ["policy", "test", str(tmp_path)]).exit_code == 2


def test_schema_prints_writes_and_checks(tmp_path: Path) -> None:
    printed = runner.invoke(app, ["policy", "schema"])
    assert printed.exit_code == 0 and '"$schema"' in printed.output
    out = tmp_path / "schema.json"
    assert runner.invoke(app, ["policy", "schema", "--check", str(out)]).exit_code == 1
    assert runner.invoke(app, ["policy", "schema", "--write", str(out)]).exit_code == 0
    assert out.read_text() == printed.output
    assert runner.invoke(app, ["policy", "schema", "--check", str(out)]).exit_code == 0
