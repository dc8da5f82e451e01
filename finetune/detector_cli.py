"""``finetune detector train``: retrain one of the detector's heads (``--head lexical``, the
default policy's, or ``semantic``) with blocked traffic, gate it against the head in use
(:mod:`finetune.detector`).

Exit codes: 0 the gate passed (the head was written, or would be with ``--dry-run``); 1 the gate
failed (nothing written but the report); 2 bad input (missing head or corpus, unreadable event
store, unusable corpus, unknown ``--head``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finetune.detector_heads import DEFAULT, HEADS, WORK, default_out

detector_app = typer.Typer(
    help="The injection detector's learned heads (lexical, semantic).", no_args_is_help=True
)
GATE = "gate"


@detector_app.command("train")
def train_command(
    head: Annotated[
        str, typer.Option(help=f"which head: {', '.join(HEADS)} (the default policy runs lexical)")
    ] = DEFAULT,
    events_db: Annotated[
        str | None, typer.Option(help="event store: SQLite path or postgresql:// URL")
    ] = None,
    corpus: Annotated[
        Path | None, typer.Option(help="corpus.jsonl (default: the detection cache's, fetched)")
    ] = None,
    per_group: Annotated[
        int,
        typer.Option(
            help="semantic: training rows per (source, label); "
            "lexical: not used (it trains on the whole train split)"
        ),
    ] = 600,
    eval_per_group: Annotated[int, typer.Option(help="test rows per (source, label)")] = 120,
    current: Annotated[
        Path | None,
        typer.Option(help="head in use (default: --out if it exists, else the bundled head)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help=f"where a passing head goes (default: {WORK}/<head>_head.npz)"),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(help=f"report.md, detector.json (default: {WORK}/<head>, one per head)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="evaluate and report; write no head")] = False,
    max_detection_drop: Annotated[float, typer.Option(help=GATE)] = 0.01,
    max_fp_increase: Annotated[float, typer.Option(help=GATE)] = 0.005,
    fp_allowance: Annotated[float, typer.Option(help=f"{GATE}: FP always allowed")] = 0.01,
    max_trigger_drop: Annotated[float, typer.Option(help=GATE)] = 0.02,
) -> None:
    """Fit a candidate head on the corpus + train-split events; compare it with the current
    head on the test split, its trigger-word prompts and the held-out events; install on PASS."""
    from pydantic import ValidationError

    from finetune.detector import RetrainConfig, retrain
    from finetune.detector_heads import kind
    from gateway.errors import ConfigError

    try:
        rule_check = kind(head).check
        out = out or default_out(head)
        cfg = RetrainConfig.model_validate(
            {
                "head": head,
                "events_db": events_db,
                "corpus": corpus,
                "per_group": per_group,
                "eval_per_group": eval_per_group,
                "current": current,
                "out": out,
                "report_dir": report_dir or WORK / head,
                "dry_run": dry_run,
                "thresholds": {
                    "max_detection_drop": max_detection_drop,
                    "max_fp_increase": max_fp_increase,
                    "fp_allowance": fp_allowance,
                    "max_trigger_drop": max_trigger_drop,
                },
            }
        )
        outcome = retrain(cfg)
    except (ValidationError, OSError, ValueError, ConfigError) as exc:
        typer.echo(f"detector train failed: {exc}", err=True)
        raise typer.Exit(2) from None
    for check in outcome.checks:
        typer.echo(f"- {check.reason()}")
    verdict = "PASS" if outcome.passed else "FAIL"
    typer.echo(f"gate: {verdict}  report: {outcome.report}")
    if not outcome.passed:
        typer.echo(f"{out} not touched")
        raise typer.Exit(1)
    if not outcome.installed:
        typer.echo(f"dry run: {out} not written")
        return
    from finetune.detector_report import policy_snippet

    typer.echo(f"wrote {out}" + (f" (previous head: {outcome.prev})" if outcome.prev else ""))
    typer.echo(f"to use it, as the {rule_check} rule of a policy's input rules:")
    typer.echo(policy_snippet(rule_check, out))
