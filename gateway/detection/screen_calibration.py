"""Fitting and calibrating the lexical screen (:mod:`.screen`) on the train split.

The screen's head is trained on the train rows the lexical head is unsure of: those whose
out-of-fold lexical score (:func:`.train.fit_lexical_oof`) is at or above the benign rows'
``1 - ZONE`` quantile and under the lexical threshold. Its threshold and the share of traffic
screened are chosen on its own out-of-fold probabilities of those rows, so no figure here comes
from a text a model was fitted on. Only the rows in the zone are embedded (minutes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from gateway.detection.datasets import Row
from gateway.detection.screen import Screen, screen_at, words_of
from gateway.detection.semantic import FloatArray

BUDGET = 0.002
"""Benign traffic the screened layer may block: 0.2 points on top of the fast layers."""
SHARES = (0.005, 0.01, 0.02, 0.03)
"""The shares of benign traffic tried. At most 3%: a benign request's p95 stays the fast path
only while well under 5% of texts pay for MiniLM."""
MIN_GAIN = 1.0
"""A wider share is chosen only if it detects at least this many more points of attacks per
point of benign traffic it adds to the screen: every screened text pays for MiniLM (about
200 ms), and long benign documents reach a lower screen first (the more runs a text has, the
higher its best one scores)."""
ZONE = 0.10
"""The head is trained on the rows at or above the benign 90th percentile of lexical scores:
wider than any share tried, so each share's texts are inside what it learned from."""
C = 1.0
FOLDS = 5
SEED = 0


def zone(rows: Sequence[Row], oof: dict[int, float], lexical_threshold: float) -> list[int]:
    """The rows the screen's head is trained on (by index; ``oof``: lexical out-of-fold scores)."""
    benign = [oof[i] for i, r in enumerate(rows) if r.label == 0]
    if not benign:
        raise ValueError("no benign texts to calibrate the screen on")
    low = float(np.quantile(benign, 1.0 - ZONE))
    return [i for i in range(len(rows)) if low <= oof[i] < lexical_threshold]


def _classifier() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=5000, class_weight="balanced")


def fit_head(x: FloatArray, y: Sequence[int]) -> tuple[list[float], float]:
    """The screen's logistic regression on features ``x`` (:func:`.screen.features`)."""
    clf = _classifier()
    clf.fit(x, np.asarray(y))
    return [float(c) for c in clf.coef_[0]], float(clf.intercept_[0])


def folds(y: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """(train, held) indices of :data:`FOLDS` stratified, seeded folds of labels ``y``."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(y)
    split = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(labels, labels)
    return [(a.tolist(), b.tolist()) for a, b in split]


def out_of_fold(x: FloatArray, y: Sequence[int]) -> FloatArray:
    """Each row's probability from the head fitted on the other folds (:func:`folds`)."""
    labels = np.asarray(y)
    out = np.zeros(len(labels), dtype=np.float64)
    for train_idx, held_idx in folds(y):
        clf = _classifier()
        clf.fit(x[train_idx], labels[train_idx])
        out[held_idx] = clf.predict_proba(x[held_idx])[:, 1]
    result: FloatArray = out.astype(np.float32)
    return result


class Cut(NamedTuple):
    """Where one share of benign traffic puts the screen, by length, and the head's threshold."""

    screen: float
    longer: tuple[tuple[int, float], ...]
    threshold: float

    def at(self, words: int) -> float:
        """The screen for a text of ``words`` words."""
        return screen_at(self.screen, self.longer, words)


def length_screens(
    composites: Mapping[int, Sequence[float]], base: float, share: float
) -> tuple[tuple[int, float], ...]:
    """The screen's steps with length: for each length of the long benign texts ``composites``
    (words -> their out-of-fold lexical scores), shortest first, the ``1 - share`` quantile of
    their scores, kept where it is above the screen of shorter texts (``base`` the shortest's).
    A text of that many words or more (up to the next step) is screened at it."""
    out: list[tuple[int, float]] = []
    current = base
    for words in sorted(composites):
        if not composites[words]:
            continue
        at = min(float(np.quantile(np.asarray(composites[words]), 1.0 - share)), 1.0)
        if at > current:
            out.append((words, at))
            current = at
    return tuple(out)


def calibrate(
    lexical: Sequence[float],
    words: Sequence[int],
    gray: dict[int, float],
    lexical_threshold: float,
    share: float,
    budget: float,
    composites: Mapping[int, Sequence[float]] | None = None,
) -> Cut:
    """The screen and the head's threshold from held-out benign texts: ``lexical`` holds every
    text's lexical score, ``words`` its length; ``gray`` the head's out-of-fold probabilities,
    by index, of (at least) the texts screened; ``composites`` the lexical scores of long
    benign texts by their length (:func:`length_screens`; none: one screen for every length).

    The screen is the ``1 - share`` quantile of the lexical scores. The threshold is the lowest
    probability (at or above it blocks) that blocks at most ``budget`` of all the texts among
    those screened and not already blocked by the lexical head; at least 0.5."""
    lex = np.asarray(lexical, dtype=np.float64)
    if not len(lex):
        raise ValueError("no benign texts to calibrate the screen on")
    screen = float(np.quantile(lex, 1.0 - share))
    longer = length_screens(composites or {}, screen, share)
    screened = [
        i for i, s in enumerate(lex) if screen_at(screen, longer, words[i]) <= s < lexical_threshold
    ]
    missing = [i for i in screened if i not in gray]
    if missing:
        raise ValueError(f"{len(missing)} screened texts have no probability from the head")
    scores = sorted((gray[i] for i in screened), reverse=True)
    allowed = int(np.floor(budget * len(lex)))
    threshold = 0.5 if len(scores) <= allowed else float(np.nextafter(scores[allowed], 2.0))
    return Cut(screen, longer, min(max(threshold, 0.5), 1.0))


@dataclass(frozen=True, slots=True)
class Calibration:
    markdown: str
    """The trade-off table: every share in :data:`SHARES` and the chosen one."""
    cut: Cut
    """The chosen share's screen, steps with length and head threshold."""
    share: float
    budget: float
    benign_rows: int

    def screen(
        self,
        lexical_sha256: str,
        pieces_sha256: str,
        coef: list[float],
        intercept: float,
        encoder_sha256: str | None = None,
    ) -> Screen:
        return Screen(
            lexical_sha256=lexical_sha256,
            encoder_sha256=encoder_sha256,
            pieces_sha256=pieces_sha256,
            screen=self.cut.screen,
            longer=list(self.cut.longer),
            threshold=self.cut.threshold,
            share=self.share,
            budget=self.budget,
            benign_rows=self.benign_rows,
            coef=coef,
            intercept=intercept,
        )

    @property
    def chosen(self) -> str:
        steps = "".join(f", {s:.3f} from {w} words" for w, s in self.cut.longer)
        return (
            f"lexical >= {self.cut.screen:.3f}{steps}, then the screen's head >= "
            f"{self.cut.threshold:.3f}"
        )


def tabulate(
    rows: list[Row],
    oof: dict[int, float],
    lexical_threshold: float,
    gray: dict[int, float],
    budget: float,
    share: float | None = None,
    composites: Mapping[int, Sequence[float]] | None = None,
) -> Calibration:
    """The screen for ``budget`` and ``share``, and a table of what each share costs and buys
    on ``rows`` (``oof``: lexical out-of-fold scores; ``gray``: the screen head's out-of-fold
    probabilities of the rows in its zone; ``composites``: out-of-fold lexical scores of long
    benign texts by length, for :func:`length_screens`). ``share`` None: of the shares in
    :data:`SHARES` that keep within ``budget``, from the smallest up, each wider one that buys
    at least :data:`MIN_GAIN` points of attacks per point of traffic over the one chosen so
    far."""
    benign = [i for i, r in enumerate(rows) if r.label == 0]
    attacks = [i for i, r in enumerate(rows) if r.label == 1]
    words = [words_of(r.text) for r in rows]
    lex_b = [oof[i] for i in benign]
    gray_b = {k: gray[i] for k, i in enumerate(benign) if i in gray}
    shares = sorted({*SHARES, share} if share is not None else set(SHARES))
    lines = [
        f"Train rows: {len(benign)} benign, {len(attacks)} attacks, {len(gray)} in the head's "
        f"zone; lexical head alone (out of fold): "
        f"{_share(attacks, lambda i: oof[i] >= lexical_threshold):.2%} of attacks, "
        f"{_share(benign, lambda i: oof[i] >= lexical_threshold):.2%} of benign blocked.",
        "",
        "| share screened | screen | screen from 512 words | head threshold | benign screened "
        "| benign blocked by the screen | attacks detected (lexical + screen) |",
        "|---|---|---|---|---|---|---|",
    ]
    words_b = [words[i] for i in benign]
    options = [
        _option(
            s,
            calibrate(lex_b, words_b, gray_b, lexical_threshold, s, budget, composites),
            words,
            benign,
            attacks,
            oof,
            gray,
            lexical_threshold,
        )
        for s in shares
    ]
    within = [o for o in options if o.benign_blocked <= budget]
    if not within and share is None:
        raise ValueError(f"no share screened keeps within a budget of {budget:.2%}")
    pick = next(o for o in options if o.share == share) if share is not None else within[0]
    if share is None:
        for o in within[1:]:
            if (o.recall - pick.recall) >= MIN_GAIN * (o.share - pick.share):
                pick = o
    lines += [
        f"| {o.share:.1%}{' (chosen)' if o is pick else ''} | {o.cut.screen:.3f} | "
        f"{o.cut.at(512):.3f} | {o.cut.threshold:.3f} | "
        f"{o.benign_screened:.2%} | {o.benign_blocked:.2%} | {o.recall:.2%} |"
        for o in options
    ]
    return Calibration("\n".join(lines), pick.cut, pick.share, budget, len(benign))


class Option(NamedTuple):
    """One share of benign traffic screened, and what it costs and buys on held-out rows."""

    share: float
    cut: Cut
    benign_screened: float
    benign_blocked: float
    """By the screened layer, beyond what the lexical head blocks itself."""
    recall: float
    """Of the attacks, by the lexical head or the screened layer."""


def _option(
    share: float,
    cut: Cut,
    words: list[int],
    benign: list[int],
    attacks: list[int],
    oof: dict[int, float],
    gray: dict[int, float],
    lexical_threshold: float,
) -> Option:
    def screened(i: int) -> bool:
        return cut.at(words[i]) <= oof[i] < lexical_threshold

    def blocked(i: int) -> bool:
        return screened(i) and gray[i] >= cut.threshold

    return Option(
        share,
        cut,
        _share(benign, screened),
        _share(benign, blocked),
        _share(attacks, lambda i: oof[i] >= lexical_threshold or blocked(i)),
    )


def _share(indices: list[int], hit: Callable[[int], bool]) -> float:
    return sum(map(hit, indices)) / max(len(indices), 1)
