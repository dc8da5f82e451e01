"""The detector head's evaluation and gate: the current and the candidate head on the same rows
with the same scorer, and the thresholds the candidate must meet to replace the current one.

Rows: a seeded sample of the corpus ``test`` split (:func:`gateway.detection.evaluate.sample`,
at most ``per_group`` rows per source and label), every benign trigger-word prompt of that split
(:attr:`gateway.detection.datasets.Row.trigger`) and the ``test``-split events.

Scoring is **whole-text**, each kind's own verdict on the prompt as written
(:meth:`finetune.detector_heads.HeadKind.flag`: for the semantic head one embedding per prompt
and ``max(head, kNN)``, for the lexical head ``LexicalHead.score``), against each head's own
calibrated threshold. The gateway's checks also score decoded views (and the semantic one
sentence windows), so their figures (docs/detection.md) are not these; both heads are measured
the same way, which is what the comparison needs, in minutes rather than hours.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from finetune.detector_train import EVENTS
from gateway.detection.datasets import Row
from gateway.detection.evaluate import Tally, pct

_EPS = 1e-9


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_detection_drop: float = Field(
        default=0.01, ge=0, le=1, description="attacks detected: candidate ≥ current minus this"
    )
    max_fp_increase: float = Field(
        default=0.005, ge=0, le=1, description="benign FP: candidate ≤ current plus this ..."
    )
    fp_allowance: float = Field(
        default=0.01, ge=0, le=1, description="... or ≤ this, whichever is higher"
    )
    max_trigger_drop: float = Field(
        default=0.02, ge=0, le=1, description="trigger-word prompts passed: current minus this"
    )


@dataclass(frozen=True, slots=True)
class EvalRows:
    sample: list[Row]
    """The corpus test-split sample (attacks and benign)."""
    trigger: list[Row]
    """Every benign trigger-word prompt of the test split."""
    events: list[Row]
    """Test-split events: never trained on."""

    def texts(self) -> list[str]:
        return list(dict.fromkeys(r.text for r in self.sample + self.trigger + self.events))


def eval_rows(corpus: list[Row], events: list[Row], per_group: int) -> EvalRows:
    from gateway.detection.evaluate import sample

    test = [r for r in corpus if r.split == "test"]
    picked = sample(test, per_group)
    if not any(r.label == 1 for r in picked) or not any(r.label == 0 for r in picked):
        raise ValueError("the corpus test split needs both attacks and benign rows")
    return EvalRows(picked, [r for r in test if r.trigger], events)


@dataclass(frozen=True, slots=True)
class Figures:
    threshold: float
    attacks: Tally
    """Corpus test-sample attacks detected."""
    benign: Tally
    """Corpus test-sample benign rows flagged (false positives)."""
    trigger: Tally
    """Benign trigger-word prompts passed."""
    events: Tally
    """Held-out event attacks detected."""
    by_source: dict[str, tuple[Tally, Tally]]
    """source -> (attacks detected, benign flagged), sample and events."""

    def as_json(self) -> dict[str, object]:
        def t(x: Tally) -> dict[str, object]:
            return {"n": x.n, "hit": x.hit, "rate": None if x.n == 0 else round(x.rate, 4)}

        return {
            "threshold": round(self.threshold, 4),
            "attacks_detected": t(self.attacks),
            "benign_false_positives": t(self.benign),
            "trigger_word_passed": t(self.trigger),
            "held_out_events_detected": t(self.events),
            "by_source": {
                s: {"attacks": t(a), "benign": t(b)} for s, (a, b) in self.by_source.items()
            },
        }


def measure(flag: Callable[[list[str]], list[bool]], threshold: float, rows: EvalRows) -> Figures:
    """One head's figures: ``flag`` gives its whole-text verdicts, ``threshold`` is reported."""
    texts = rows.texts()
    verdict = dict(zip(texts, flag(texts), strict=True))
    attacks, benign, trigger, events = Tally(), Tally(), Tally(), Tally()
    by_source: dict[str, tuple[Tally, Tally]] = defaultdict(lambda: (Tally(), Tally()))
    for r in rows.sample + rows.events:
        hit = verdict[r.text]
        if r.source != EVENTS:
            (attacks if r.label == 1 else benign).add(hit)
        by_source[r.source][0 if r.label == 1 else 1].add(hit)
    for r in rows.events:
        events.add(verdict[r.text])
    for r in rows.trigger:
        trigger.add(not verdict[r.text])
    return Figures(threshold, attacks, benign, trigger, events, dict(sorted(by_source.items())))


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    figure: str
    n: int
    current: float
    candidate: float
    op: str
    limit: float | None
    """None: no rows to check on."""

    @property
    def passed(self) -> bool:
        if self.limit is None:
            return True
        if self.op == ">=":
            return self.candidate >= self.limit - _EPS
        return self.candidate <= self.limit + _EPS

    def reason(self) -> str:
        if self.limit is None:
            return f"{self.figure}: no rows, not checked"
        verdict = "pass" if self.passed else "FAIL"
        return (
            f"{self.figure}: candidate {pct(self.candidate)} vs current {pct(self.current)}, "
            f"needs {self.op} {pct(self.limit)}: {verdict}"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "figure": self.figure,
            "n": self.n,
            "current": None if self.n == 0 else round(self.current, 4),
            "candidate": None if self.n == 0 else round(self.candidate, 4),
            "op": self.op,
            "limit": None if self.limit is None else round(self.limit, 4),
            "pass": self.passed,
        }


def decide(current: Figures, candidate: Figures, t: Thresholds) -> list[Check]:
    """The gate's checks; the candidate passes when every one does."""

    def check(name: str, figure: str, cur: Tally, cand: Tally, op: str, limit: float) -> Check:
        n = cand.n
        return Check(name, figure, n, cur.rate, cand.rate, op, limit if n else None)

    a, b, g, e = current.attacks, current.benign, current.trigger, current.events
    fp_limit = max(b.rate + t.max_fp_increase, t.fp_allowance) if b.n else 0.0
    return [
        check(
            "detection",
            "attacks detected (corpus test sample)",
            a,
            candidate.attacks,
            ">=",
            a.rate - t.max_detection_drop,
        ),
        check(
            "false_positives",
            "benign false positives (corpus test sample)",
            b,
            candidate.benign,
            "<=",
            fp_limit,
        ),
        check(
            "trigger_words",
            "benign trigger-word prompts passed (test split)",
            g,
            candidate.trigger,
            ">=",
            g.rate - t.max_trigger_drop,
        ),
        check(
            "held_out_events",
            "event attacks detected (held out: test split)",
            e,
            candidate.events,
            ">=",
            e.rate,
        ),
    ]
