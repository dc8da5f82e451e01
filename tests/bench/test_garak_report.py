"""bench.garak_report: garak's report JSONL, the pairing of two passes, the table.

``garak_sample/`` holds lines from a real run (``python -m bench.garak_run --cap 2`` with three
probes; plugin-cache and digest lines left out): the same prompts without and with the gateway.
garak's own ``eval`` lines in those files are the independent check of what is parsed here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from bench.garak_report import (
    ReportError,
    Run,
    blocks_by_rule,
    compare,
    notes,
    parse_report,
    read_report,
    table_rows,
    total,
)
from gateway.metrics import Metrics

SAMPLE = Path(__file__).parent / "garak_sample"


def garak_evals(path: Path) -> dict[str, dict[str, Any]]:
    evals = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["entry_type"] == "eval":
            evals[entry["probe"]] = entry
    return evals


@pytest.fixture(scope="module")
def runs() -> tuple[Run, Run]:
    return read_report(SAMPLE / "without.report.jsonl"), read_report(SAMPLE / "with.report.jsonl")


def test_run_settings_come_from_the_report(runs: tuple[Run, Run]) -> None:
    without, _ = runs
    assert without.garak_version == "0.17.1"
    assert (without.seed, without.prompt_cap, without.generations) == (7, 2, 1)
    assert without.threshold == 0.5
    assert without.detectors["encoding.InjectUnicodeTagChars"] == ("encoding.DecodeMatch",)


@pytest.mark.parametrize("name", ["without", "with"])
def test_hits_and_missing_answers_agree_with_garaks_own_eval(name: str) -> None:
    path = SAMPLE / f"{name}.report.jsonl"
    run = read_report(path)
    for probe, ev in garak_evals(path).items():
        attempts = [a for a in run.attempts if a.probe == probe]
        assert len(attempts) == ev["total_processed"]  # one attempt per prompt, not two
        assert sum(a.hit for a in attempts) == ev["fails"]
        assert sum(not a.answered for a in attempts) == ev["nones"]


def test_compare_pairs_the_passes_and_keeps_garaks_figure_as_answered_only(
    runs: tuple[Run, Run],
) -> None:
    rows = {r.probe: r for r in compare(*runs)}
    evals_with = garak_evals(SAMPLE / "with.report.jsonl")
    for probe, ev in evals_with.items():
        row = rows[probe]
        assert row.unpaired == 0  # same seed: garak sent the same prompts
        assert row.no_answer_without == 0
        assert row.blocked == ev["nones"]
        assert row.prompts == row.prompts_with == ev["total_processed"]
        if ev["total_evaluated"]:
            assert row.asr_with_answered == pytest.approx(ev["fails"] / ev["total_evaluated"])
        else:
            assert row.asr_with_answered is None
    tags = rows["encoding.InjectUnicodeTagChars"]
    assert tags.blocked == tags.prompts and tags.asr_with == 0.0


def attempt(probe: str, prompt: str, output: str | None, score: float | None) -> str:
    return json.dumps({
        "entry_type": "attempt", "status": 2, "probe_classname": probe,
        "prompt": {"turns": [{"role": "user", "content": {"text": prompt}}]},
        "outputs": [None if output is None else {"text": output}],
        "detector_results": {"d.D": [score]},
    })  # fmt: skip


INIT = json.dumps({"entry_type": "init", "garak_version": "0.17.1"})


def test_no_answer_in_both_passes_is_not_a_block_and_unpaired_prompts_are_flagged() -> None:
    without = parse_report([
        INIT,
        attempt("p.P", "too long", None, None),
        attempt("p.P", "hello", "hi", 0.0),
        attempt("p.P", "only before", "x", 1.0),
    ])  # fmt: skip
    with_gateway = parse_report([
        INIT,
        attempt("p.P", "too long", None, None),
        attempt("p.P", "hello", None, None),
        attempt("p.P", "only after", "y", 0.9),
    ])  # fmt: skip
    (row,) = compare(without, with_gateway)
    assert (row.blocked, row.no_answer_both, row.no_answer_without) == (1, 1, 1)
    assert row.unpaired == 2
    assert row.hits_without == 1 and row.hits_with == 1
    assert row.asr_with == pytest.approx(1 / 3)
    assert row.asr_with_answered == 1.0  # the one answered prompt hit
    said = " ".join(notes([row]))
    assert "no answer even without the gateway" in said and "one pass only" in said


def test_score_at_the_threshold_is_a_hit_and_below_is_not() -> None:
    run = parse_report([
        INIT,
        json.dumps({"entry_type": "start_run setup", "run.eval_threshold": 0.7}),
        attempt("p.P", "a", "x", 0.7),
        attempt("p.P", "b", "y", 0.69),
    ])  # fmt: skip
    assert [a.hit for a in run.attempts] == [True, False]


def test_table_has_a_total_row_and_shows_differing_prompt_counts() -> None:
    without = parse_report([INIT, attempt("a.A", "1", "x", 1.0), attempt("b.B", "2", "y", 0.0)])
    with_gateway = parse_report([INIT, attempt("a.A", "1", None, None)])
    rows = compare(without, with_gateway)
    table = table_rows(rows)
    assert [r[0] for r in table] == ["a.A", "b.B", "all"]
    assert table[0][2:6] == ["1", "100.0% (1)", "0.0% (0)", "1"]
    assert table[1][2] == "1/0" and table[1][4] == "n/a (0)"
    assert table[0][6] == "n/a"  # nothing answered through the gateway
    assert total(rows).prompts == 2 and total(rows).blocked == 1


@pytest.mark.parametrize(
    ("lines", "message"),
    [([INIT, "{not json"], "line 2: not JSON"), ([attempt("p.P", "a", "x", 0.0)], "no init")],
)
def test_unreadable_reports_fail_with_a_reason(lines: list[str], message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_report(lines)


def test_blocks_by_rule_reads_the_gateways_own_metrics() -> None:
    m = Metrics()
    verdicts = m.check_verdicts
    verdicts.labels("default", "input", "injection-smuggling", "block", "smuggling").inc(2)
    verdicts.labels("default", "input", "injection-suffix", "block", "suffix").inc()
    verdicts.labels("default", "input", "injection-suffix", "block", "other").inc()
    verdicts.labels("default", "input", "pii", "redact", "pii").inc(5)
    text = generate_latest(m.registry).decode()
    assert blocks_by_rule(text) == {"input/injection-smuggling": 2, "input/injection-suffix": 2}
