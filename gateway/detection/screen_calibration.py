"""Calibrating the lexical screen (:mod:`.screen`) on the train split.

Both heads' scores come from train rows neither head was fitted on: the lexical head's are out
of fold (:func:`.train.fit_lexical_oof`), the semantic head's are of rows outside its seeded
training sample. Only the texts near the screen are embedded (minutes, not an hour).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from gateway.detection.datasets import Row
from gateway.detection.screen import Screen

BUDGET = 0.002
"""Benign traffic the screened layer may block: 0.2 points on top of the fast layers."""
SHARES = (0.005, 0.01, 0.02, 0.03, 0.05)
"""The shares of benign traffic tried (at most 5%, so a benign request's p95 stays the fast
path). A wider screen is not better by itself: it takes in benign texts the semantic head also
scores high, and the budget then forces its threshold up."""


def calibrate(
    lexical: Sequence[float],
    semantic: dict[int, float],
    lexical_threshold: float,
    share: float,
    budget: float,
) -> tuple[float, float]:
    """``(screen, threshold)`` from held-out benign texts: ``lexical`` holds every text's
    lexical score; ``semantic`` the semantic scores, by index, of (at least) the texts screened.

    ``screen`` is the ``1 - share`` quantile of the lexical scores. ``threshold`` is the lowest
    semantic threshold (scores at or above it block) that blocks at most ``budget`` of all the
    texts among those screened and not already blocked by the lexical head; at least 0.5."""
    lex = np.asarray(lexical, dtype=np.float64)
    if not len(lex):
        raise ValueError("no benign texts to calibrate the screen on")
    screen = float(np.quantile(lex, 1.0 - share))
    gray = [i for i, s in enumerate(lex) if screen <= s < lexical_threshold]
    missing = [i for i in gray if i not in semantic]
    if missing:
        raise ValueError(f"{len(missing)} screened texts have no semantic score")
    scores = sorted((semantic[i] for i in gray), reverse=True)
    allowed = int(np.floor(budget * len(lex)))
    threshold = 0.5 if len(scores) <= allowed else float(np.nextafter(scores[allowed], 1.0))
    return screen, min(max(threshold, 0.5), 0.99)


@dataclass(frozen=True, slots=True)
class Calibration:
    markdown: str
    """The trade-off table: every share in :data:`SHARES` and the chosen one."""
    screen_at: float
    threshold: float
    share: float
    budget: float
    benign_rows: int

    def screen(self, lexical_sha256: str, semantic_sha256: str) -> Screen:
        return Screen(
            lexical_sha256=lexical_sha256,
            semantic_sha256=semantic_sha256,
            screen=self.screen_at,
            threshold=self.threshold,
            share=self.share,
            budget=self.budget,
            benign_rows=self.benign_rows,
        )

    @property
    def chosen(self) -> str:
        return f"lexical >= {self.screen_at:.3f}, then semantic >= {self.threshold:.3f}"


def tabulate(
    rows: list[Row],
    held: list[int],
    oof: dict[int, float],
    lexical_threshold: float,
    semantic: Callable[[str], float],
    budget: float,
    share: float | None = None,
) -> Calibration:
    """The screen for ``budget`` and ``share``, and a table of what each share costs and buys
    on the ``held`` rows (held out of the semantic head; ``oof``: lexical out-of-fold scores;
    ``semantic``: a text's semantic score). ``share`` None: of the shares in :data:`SHARES`
    that keep within ``budget``, the one that detects the most held attacks (the smaller on a
    tie)."""
    from rich.progress import track

    benign = [i for i in held if rows[i].label == 0]
    attacks = [i for i in held if rows[i].label == 1]
    lex_b = [oof[i] for i in benign]
    shares = sorted({*SHARES, share} if share is not None else set(SHARES))
    lowest = float(np.quantile(lex_b, 1.0 - max(shares)))
    ask = [i for i in benign + attacks if lowest <= oof[i] < lexical_threshold]
    sem = {
        i: semantic(rows[i].text) for i in track(ask, description="semantic scores near the screen")
    }
    sem_b = {k: sem[i] for k, i in enumerate(benign) if i in sem}
    lines = [
        f"Held-out train rows: {len(benign)} benign, {len(attacks)} attacks; lexical head alone: "
        f"{_share(attacks, lambda i: oof[i] >= lexical_threshold):.2%} of attacks, "
        f"{_share(benign, lambda i: oof[i] >= lexical_threshold):.2%} of benign blocked.",
        "",
        "| share screened | screen | semantic threshold | benign screened | benign blocked "
        "by the screen | attacks detected (lexical + screen) |",
        "|---|---|---|---|---|---|",
    ]
    options = [
        _option(
            s,
            *calibrate(lex_b, sem_b, lexical_threshold, s, budget),
            benign,
            attacks,
            oof,
            sem,
            lexical_threshold,
        )
        for s in shares
    ]
    # a threshold capped at 0.99 can block more than the budget: such a share is never picked
    within = [o for o in options if o.benign_blocked <= budget]
    if not within and share is None:
        raise ValueError(f"no share screened keeps within a budget of {budget:.2%}")
    pick = (
        next(o for o in options if o.share == share)
        if share is not None
        else max(within, key=lambda o: (o.recall, -o.share))
    )
    lines += [
        f"| {o.share:.1%}{' (chosen)' if o is pick else ''} | {o.screen:.3f} | "
        f"{o.threshold:.3f} | {o.benign_screened:.2%} | {o.benign_blocked:.2%} | {o.recall:.2%} |"
        for o in options
    ]
    return Calibration(
        "\n".join(lines), pick.screen, pick.threshold, pick.share, budget, len(benign)
    )


class Option(NamedTuple):
    """One share of benign traffic screened, and what it costs and buys on held-out rows."""

    share: float
    screen: float
    threshold: float
    benign_screened: float
    benign_blocked: float
    """By the screened semantic layer, beyond what the lexical head blocks itself."""
    recall: float
    """Of the held attacks, by the lexical head or the screened semantic layer."""


def _option(
    share: float,
    screen: float,
    threshold: float,
    benign: list[int],
    attacks: list[int],
    oof: dict[int, float],
    sem: dict[int, float],
    lexical_threshold: float,
) -> Option:
    def gray(i: int) -> bool:
        return screen <= oof[i] < lexical_threshold

    def screened_out(i: int) -> bool:
        return gray(i) and sem[i] >= threshold

    return Option(
        share,
        screen,
        threshold,
        _share(benign, gray),
        _share(benign, screened_out),
        _share(attacks, lambda i: oof[i] >= lexical_threshold or screened_out(i)),
    )


def _share(indices: list[int], hit: Callable[[int], bool]) -> float:
    return sum(map(hit, indices)) / max(len(indices), 1)
