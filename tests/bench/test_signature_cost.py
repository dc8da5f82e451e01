from __future__ import annotations

from pathlib import Path

from bench.signature_cost import hostile_texts, run
from gateway.detection.paths import SIGNATURES
from gateway.detection.signatures import load_signatures


def test_hostile_texts_repeat_the_rules_own_words_to_the_view_size() -> None:
    texts = hostile_texts(r"\b(grand ?(ma|mother)|granny)\b.{0,200}?\b(steps?|how) to", length=100)
    assert [t.split(" ", 1)[0] for t in texts] == ["grand", "mother", "granny", "steps", "how"]
    assert all(len(t) == 100 for t in texts)
    assert set(texts[2].split()) <= {"granny", "g", "gr", "gra", "gran", "grann"}  # cut at 100


def test_every_rule_is_timed_slowest_first(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - {id: lazy-gaps, family: f, version: 1, score: 0.5, examples: [aaa bbb],\n"
        "     regex: '(aaa ){1,50}?.{0,400}?bbbb'}\n"
        "  - {id: plain, family: f, version: 1, score: 0.5, examples: [ccc], regex: 'ccc'}\n"
    )
    costs = run(rules)
    assert sorted(c.rule for c in costs) == ["lazy-gaps", "plain"]
    assert costs == sorted(costs, key=lambda c: c.ms, reverse=True)
    assert all(c.ms >= 0 and c.word for c in costs)


def test_the_shipped_rules_all_get_a_figure() -> None:
    costs = run()
    assert {c.rule for c in costs} == {r.id for r in load_signatures(SIGNATURES).spec.rules}
