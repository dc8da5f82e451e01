"""The detector head's gate: each threshold, on hand-made figures."""

from __future__ import annotations

from finetune.detector_gate import Figures, Thresholds, decide
from gateway.detection.evaluate import Tally


def figures(attacks: int, fp: int, trigger: int, events: int, n_events: int = 10) -> Figures:
    """Out of 100 attacks, 200 benign, 50 trigger-word prompts and ``n_events`` events."""
    return Figures(
        0.9, Tally(100, attacks), Tally(200, fp), Tally(50, trigger), Tally(n_events, events), {}
    )


def verdicts(current: Figures, candidate: Figures, t: Thresholds | None = None) -> dict[str, bool]:
    return {c.name: c.passed for c in decide(current, candidate, t or Thresholds())}


def test_an_equal_candidate_passes_every_check() -> None:
    same = figures(80, 4, 48, 5)
    assert all(verdicts(same, same).values())


def test_detection_may_drop_one_point_not_two() -> None:
    assert verdicts(figures(80, 4, 48, 5), figures(79, 4, 48, 5))["detection"]
    assert not verdicts(figures(80, 4, 48, 5), figures(78, 4, 48, 5))["detection"]


def test_false_positives_up_to_half_a_point_more_or_one_percent() -> None:
    # current 2.0%: the limit is 2.5% (5 of 200), not 1%
    assert verdicts(figures(80, 4, 48, 5), figures(80, 5, 48, 5))["false_positives"]
    assert not verdicts(figures(80, 4, 48, 5), figures(80, 6, 48, 5))["false_positives"]
    # current 0%: 1% (2 of 200) is still allowed, 1.5% is not
    assert verdicts(figures(80, 0, 48, 5), figures(80, 2, 48, 5))["false_positives"]
    assert not verdicts(figures(80, 0, 48, 5), figures(80, 3, 48, 5))["false_positives"]
    loose = Thresholds(fp_allowance=0.02)
    assert verdicts(figures(80, 0, 48, 5), figures(80, 3, 48, 5), loose)["false_positives"]


def test_trigger_words_may_drop_two_points() -> None:
    assert verdicts(figures(80, 4, 48, 5), figures(80, 4, 47, 5))["trigger_words"]  # 96 -> 94
    assert not verdicts(figures(80, 4, 48, 5), figures(80, 4, 46, 5))["trigger_words"]


def test_held_out_events_must_not_get_worse_and_are_skipped_when_there_are_none() -> None:
    assert not verdicts(figures(80, 4, 48, 5), figures(80, 4, 48, 4))["held_out_events"]
    checks = decide(figures(80, 4, 48, 0, 0), figures(80, 4, 48, 0, 0), Thresholds())
    events = next(c for c in checks if c.name == "held_out_events")
    assert events.passed and events.limit is None
    assert "no rows" in events.reason()
