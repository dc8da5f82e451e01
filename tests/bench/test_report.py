"""bench.report: added latency, ratios and target verdicts from measured cells."""

from __future__ import annotations

import pytest

from bench.report import (
    DIRECT,
    GATEWAY_OFF,
    LITELLM,
    Cell,
    adapter_target,
    compare,
    markdown_table,
    overhead_targets,
    percentiles,
    text_table,
)


def cell(target: str, conc: int, rps: float, p50: float, p99: float, stream: bool = False) -> Cell:
    return Cell(target, stream, conc, int(rps * 5), 0, rps, p50, p99)


CELLS = [
    cell(DIRECT, 1, 1000, 0.5, 1.0),
    cell(GATEWAY_OFF, 1, 800, 0.9, 1.6),
    cell(LITELLM, 1, 80, 11.0, 20.0),
    cell(DIRECT, 64, 6000, 10.0, 20.0),
    cell(GATEWAY_OFF, 64, 1500, 40.0, 60.0),
    cell(LITELLM, 64, 100, 600.0, 1020.0),
]


def test_compare_subtracts_direct_and_divides_by_litellm() -> None:
    rows = {(o.cell.target, o.cell.connections): o for o in compare(CELLS)}
    ours = rows[(GATEWAY_OFF, 64)]
    assert ours.added_p50_ms == pytest.approx(30.0)
    assert ours.added_p99_ms == pytest.approx(40.0)
    assert ours.rps_vs_direct == pytest.approx(0.25)
    assert ours.rps_vs_litellm == pytest.approx(15.0)
    assert ours.added_p99_vs_litellm == pytest.approx(40.0 / 1000.0)
    assert rows[(DIRECT, 1)].added_p99_ms == 0


def test_cells_without_a_direct_baseline_are_left_out() -> None:
    assert compare([cell(GATEWAY_OFF, 16, 100, 1, 2)]) == []


def test_overhead_targets_judge_each_goal() -> None:
    verdicts = {t.goal: t.met for t in overhead_targets(compare(CELLS))}
    assert verdicts["guards off, json: added p99 ≤ 1 ms at concurrency 1"] is True
    assert verdicts["guards off, json: added p99 ≤ 10 ms at concurrency 64"] is False
    assert verdicts["guards off, json: ≥ 10x LiteLLM's req/s at concurrency 64"] is True
    assert verdicts["guards off, json: > 1,100 req/s at concurrency 64"] is True
    assert verdicts["guards off, stream: added p99 ≤ 1 ms at concurrency 1"] is None


def test_a_gateway_p99_below_the_direct_p99_is_inconclusive_not_met() -> None:
    noisy = [cell(DIRECT, 1, 1000, 0.5, 30.0), cell(GATEWAY_OFF, 1, 800, 0.9, 5.0)]
    goal = "guards off, json: added p99 ≤ 1 ms at concurrency 1"
    (target,) = [t for t in overhead_targets(compare(noisy)) if t.goal == goal]
    assert target.met is None
    assert target.row()[2] == "inconclusive" and "noise" in target.measured
    goal = "guards off, stream: added p99 ≤ 1 ms at concurrency 1"
    (missing,) = [t for t in overhead_targets(compare(noisy)) if t.goal == goal]
    assert missing.row()[2] == "not measured"


def test_adapter_target() -> None:
    assert adapter_target(100.0, 95.0).met is True
    assert adapter_target(100.0, 80.0).met is False
    assert adapter_target(None, 80.0).met is None


def test_percentiles_interpolate_like_numpy() -> None:
    assert percentiles([1.0, 2.0, 3.0, 4.0], (50, 100)) == [2.5, 4.0]
    assert percentiles([5.0], (95,)) == [5.0]


def test_tables_have_one_line_per_row() -> None:
    md = markdown_table(["a", "b"], [["1", "22"], ["3", "4"]])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1 | 22 |", "| 3 | 4 |"]
    text = text_table(["a", "b"], [["1", "22"]]).splitlines()
    assert text[0].split() == ["a", "b"] and text[2].split() == ["1", "22"]
