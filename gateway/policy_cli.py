"""``gateway policy lint|test|schema``: what a security team runs before shipping a policy.

Exit codes: 0 all good; 1 a policy or test file is invalid, or a case did not hold; 2 nothing to
do (no policies or no test files where pointed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from gateway.errors import ConfigError
from gateway.policy import load_policy
from gateway.policy_tests import TESTS_SUFFIX, load_tests, policy_files, run_file, tests_for

policy_app = typer.Typer(
    help="Lint, test and export the schema of policy files.", no_args_is_help=True
)

Target = Annotated[
    Path, typer.Argument(help="a policy directory, or one policy / test file", exists=True)
]


@policy_app.command()
def lint(target: Target = Path("policies")) -> None:
    """Load every policy (and its test file) strictly; report errors with line numbers."""
    policies = [target] if target.is_file() else policy_files(target)
    if not policies:
        typer.echo(f"no policy files (*.yaml) in {target}", err=True)
        raise typer.Exit(2)
    errors = 0
    for path in policies:
        try:
            policy = load_policy(path)
        except ConfigError as exc:
            errors += 1
            typer.echo(f"FAIL {path}\n  {exc.message}")
            continue
        rules = len(policy.input.rules) + len(policy.output.rules)
        typer.echo(f"ok   {path}: policy {policy.name!r}, {rules} rules")
        tests = tests_for(path)
        if not tests.exists():
            typer.echo(f"warn {path}: no test file ({tests.name})")
            continue
        try:
            load_tests(tests)
        except ConfigError as exc:
            errors += 1
            typer.echo(f"FAIL {tests}\n  {exc.message}")
    if errors:
        raise typer.Exit(1)


@policy_app.command("test")
def test_(
    target: Target = Path("policies"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="list passing cases")] = False,
) -> None:
    """Run the cases in every *.tests.yaml; exit 1 on any mismatch."""
    files = [target] if target.is_file() else sorted(target.glob(f"*{TESTS_SUFFIX}"))
    if not files:
        typer.echo(f"no test files (*{TESTS_SUFFIX}) in {target}", err=True)
        raise typer.Exit(2)
    passed = failed = 0
    for path in files:
        try:
            policy_path, results = asyncio.run(run_file(path))
        except ConfigError as exc:
            failed += 1
            typer.echo(f"FAIL {path}\n  {exc.message}")
            continue
        for r in results:
            if r.passed:
                passed += 1
                if verbose:
                    typer.echo(f"ok   {policy_path.name}: {r.case.name}")
                continue
            failed += 1
            typer.echo(f"FAIL {policy_path.name}: {r.case.name}")
            for problem in r.problems:
                typer.echo(f"       {problem}")
    typer.echo(f"{passed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


@policy_app.command()
def schema(
    write: Annotated[
        Path | None, typer.Option(help="write it here (e.g. policies/schema.json)")
    ] = None,
    check: Annotated[
        Path | None, typer.Option(help="exit 1 unless this file is up to date")
    ] = None,
) -> None:
    """Print the policy JSON Schema (for editors), write it, or check a committed copy."""
    from gateway.policy_schema import render_schema

    text = render_schema()
    if check is not None:
        current = check.read_text(encoding="utf-8") if check.exists() else ""
        if current != text:
            typer.echo(f"{check} is out of date: run 'gateway policy schema --write {check}'")
            raise typer.Exit(1)
        typer.echo(f"{check} is up to date")
    elif write is not None:
        write.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {write}")
    else:
        typer.echo(text, nl=False)
