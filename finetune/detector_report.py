"""What ``finetune detector train`` leaves behind: ``report.md`` and ``detector.json``, the
installed head (written atomically, the old one kept as ``<out>.prev``) and the policy snippet
that uses it. The same for every head kind (:mod:`finetune.detector_heads`)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from finetune.detector_gate import Check, Figures
from gateway.detection.evaluate import Report, Tally, pct


def _cell(t: Tally) -> str:
    return pct(t.rate)


def markdown(
    current: Figures,
    candidate: Figures,
    checks: list[Check],
    training: dict[str, int],
    header: list[str],
    head: str,
    scoring: str,
) -> str:
    """The report of one run of the ``head`` kind; ``scoring`` says how both heads were scored."""
    passed = all(c.passed for c in checks)
    report = Report()
    gate = {c.figure: c for c in checks}
    figure_rows = []
    for figure, cur, cand in (
        ("attacks detected (corpus test sample)", current.attacks, candidate.attacks),
        ("benign false positives (corpus test sample)", current.benign, candidate.benign),
        ("benign trigger-word prompts passed (test split)", current.trigger, candidate.trigger),
        ("event attacks detected (held out: test split)", current.events, candidate.events),
    ):
        c = gate[figure]
        rule = (
            "n/a"
            if c.limit is None
            else f"{c.op} {pct(c.limit)}: " + ("pass" if c.passed else "**fail**")
        )
        figure_rows.append([figure, str(cand.n), _cell(cur), _cell(cand), rule])
    figure_rows.append(
        ["calibrated threshold", "", f"{current.threshold:.3f}", f"{candidate.threshold:.3f}", ""]
    )
    report.table(
        "Current vs candidate (same rows, same scorer)",
        ["figure", "n", "current", "candidate", "gate"],
        figure_rows,
    )
    source_rows = []
    for source, (att, ben) in candidate.by_source.items():
        cur_att, cur_ben = current.by_source[source]
        source_rows.append(
            [
                source,
                str(att.n),
                _cell(cur_att),
                _cell(att),
                str(ben.n),
                _cell(cur_ben),
                _cell(ben),
            ]
        )
    report.table(
        "Per source (corpus test sample; `events` = held-out events)",
        [
            "source",
            "attacks",
            "current detected",
            "candidate detected",
            "benign",
            "current FP",
            "candidate FP",
        ],
        source_rows,
    )
    report.table(
        "Training rows of the candidate",
        ["rows", "count"],
        [[k.replace("_", " "), str(v)] for k, v in training.items()],
    )
    lines = [
        f"# {head.capitalize()} head: current vs candidate",
        "",
        *header,
        "",
        f"Gate: **{'PASS' if passed else 'FAIL'}**",
        "",
        *[f"- {c.reason()}" for c in checks],
        "",
        scoring,
        "",
        report.markdown(),
    ]
    return "\n".join(lines)


def write_report(report_dir: Path, markdown_text: str, data: dict[str, object]) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "report.md").write_text(markdown_text, encoding="utf-8")
    (report_dir / "detector.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return report_dir / "report.md"


def install(save: Callable[[Path], None], load: Callable[[Path], object], out: Path) -> Path | None:
    """Write a head to ``out`` atomically: ``save`` writes it to a temporary file beside ``out``,
    ``load`` reads that back, then ``os.replace``. An existing ``out`` is first copied to
    ``<out>.prev``, which is returned."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.npz")  # numpy appends .npz otherwise
    prev_tmp = out.with_name(f".{out.name}.{os.getpid()}.prev.tmp")
    prev = None
    try:
        save(tmp)
        load(tmp)  # a file that does not read back never replaces a working head
        if out.exists():
            prev = out.with_name(out.name + ".prev")
            shutil.copy2(out, prev_tmp)
            os.replace(prev_tmp, prev)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        prev_tmp.unlink(missing_ok=True)
    return prev


def policy_snippet(check: str, out: Path) -> str:
    """An input rule that runs ``check`` with ``out`` as its ``head_file`` (a quoted YAML string);
    its id is the one the default policy gives that check."""
    return "\n".join(
        [
            f"  - id: {check.replace('_', '-')}",
            f"    check: {check}",
            "    action: block",
            "    settings:",
            f"      head_file: {json.dumps(str(out.resolve()))}",
        ]
    )
