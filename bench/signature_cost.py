"""The signature rules on hostile input: each rule's regex, on its own, searched in texts of
20,000 characters (the size a view is cut to) made of one of the rule's own literal words
repeated ("granny granny ..."), what a client can send to make a backtracking regex slow. The
table lists the slowest rules, each at its worst word (best of 3 searches); one far slower than
the rest is a denial-of-service risk to fix before it ships (docs/detection.md, the
grandmother rule's first version). Timing only: nothing here passes or fails."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.detection.paths import SIGNATURES
from gateway.detection.signatures import load_signatures
from gateway.detection.views import MAX_DECODE_CHARS

LENGTH = MAX_DECODE_CHARS  # what a view is cut to
WORDS_PER_RULE = 8
ROUNDS = 3


@dataclass(frozen=True, slots=True)
class RuleCost:
    rule: str
    word: str
    ms: float


def hostile_texts(regex: str, *, words: int = WORDS_PER_RULE, length: int = LENGTH) -> list[str]:
    """Texts of ``length`` characters, each one of the first ``words`` distinct literal words
    (three letters or more) of ``regex`` repeated with spaces."""
    seen = list(dict.fromkeys(re.findall(r"[a-z]{3,}", regex)))[:words]
    return [((w + " ") * (length // (len(w) + 1) + 1))[:length] for w in seen]


def _best_ms(rx: re.Pattern[str], text: str) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        rx.search(text)
        best = min(best, (time.perf_counter() - start) * 1000)
    return best


def run(path: Path = SIGNATURES) -> list[RuleCost]:
    """Every rule at its worst hostile text, slowest first."""
    out = []
    for rule, rx in load_signatures(path).compiled:
        costs = [(_best_ms(rx, t), t.split(" ", 1)[0]) for t in hostile_texts(rule.regex)]
        ms, word = max(costs, default=(0.0, ""))
        out.append(RuleCost(rule.id, word, ms))
    return sorted(out, key=lambda c: c.ms, reverse=True)
