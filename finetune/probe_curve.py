"""``finetune probe-curve``: how ``method: probe_gate``'s gates would do on attack families they
never saw, before anything is trained, for several thresholds at once.

Leave-one-family-out over the training rows: for each attack family, the gates are fitted (as
``finetune train`` fits them, same settings and positions) without that family's attacks, its
benign twins (benign rows whose ``meta.family`` names it) and a share of the other benign rows
(dealt round-robin over the families), then scored on what was left out at the decision position
(the last prompt token). The vote is the gates' mean pre-activation ``row · x`` over the layers:
open when above 0. Lowering the threshold opens more of both; the table is what a threshold is
chosen from (docs/finetune.md, run 11). It is the gates' verdict, not the trained adapter's (the
base model refuses some attacks by itself, and the trained writes add their own errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finetune.probe_gate import (
    Conversation,
    ProbeGateError,
    fit_gate,
    read_training,
    reading_model,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from finetune.probe_gate import Positions
    from finetune.train_config import TrainConfig

DEFAULT_THRESHOLDS = (1.0, 1.5, 2.0, 2.5, 3.0)


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    attacks_open: float
    """share of left-out attacks the gates' vote opens on (the higher the better)"""
    benign_open: float
    """share of left-out benign rows it opens on (the lower the better)"""
    by_family: dict[str, float]
    """``attacks_open`` per left-out family"""


@dataclass(frozen=True)
class Curve:
    layers: list[int]
    attacks: int
    benign: int
    points: list[CurvePoint]

    def as_dict(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "attacks": self.attacks,
            "benign": self.benign,
            "points": [
                {
                    "threshold": p.threshold,
                    "attacks_open": round(p.attacks_open, 4),
                    "benign_open": round(p.benign_open, 4),
                    "by_family": {f: round(v, 4) for f, v in p.by_family.items()},
                }
                for p in self.points
            ],
        }

    def table(self) -> str:
        lines = [
            f"leave-one-family-out, layers {self.layers}: "
            f"{self.attacks} attacks, {self.benign} benign rows left out in turn",
            "| threshold | attacks the gates open on | benign rows they open on |",
            "| ---: | ---: | ---: |",
        ]
        lines += [
            f"| {p.threshold:g} | {p.attacks_open:.1%} | {p.benign_open:.1%} |" for p in self.points
        ]
        return "\n".join(lines)


def folds(conversations: Sequence[Conversation]) -> list[str]:
    """The family each conversation is left out with: attacks and twins their own family, the
    other benign rows dealt round-robin over the attack families (in file order)."""
    families = sorted({c.family for c in conversations if c.attack})
    if len(families) < 2:
        raise ProbeGateError(
            f"probe-curve needs attacks of at least two families (meta.family); found {families}"
        )
    out: list[str] = []
    dealt = 0
    for c in conversations:
        if c.attack or c.family in families:
            out.append(c.family)
        else:
            out.append(families[dealt % len(families)])
            dealt += 1
    return out


def left_out_scores(
    positions: Positions, fold: npt.NDArray[np.str_], rows: int, cfg: TrainConfig
) -> tuple[Any, Any, Any]:
    """Per left-out decision position: (``row · x`` per layer at threshold 0, the constant
    direction's ``one · x`` per layer, the conversation index)."""
    import numpy as np

    settings = cfg.probe_gate.model_copy(update={"threshold": 0.0})
    scores, ones, index = [], [], []
    for family in sorted(set(fold.tolist())):
        held = fold[positions.conversation] == family
        fit = positions.subset(~held)
        if not fit.attack.any() or fit.attack.all():
            raise ProbeGateError(
                f"probe-curve: leaving out {family} leaves no "
                f"{'benign' if fit.attack.all() else 'attack'} rows to fit the gates on"
            )
        decision = held & (positions.offset == 0) & (positions.conversation < rows)
        s, o = [], []
        for layer in settings.layers:
            gate = fit_gate(fit, layer, settings)
            x = positions.features[layer][decision]
            s.append(x @ gate.row)
            o.append(x @ gate.one)
        scores.append(np.stack(s, 1))
        ones.append(np.stack(o, 1))
        index.append(positions.conversation[decision])
    return np.concatenate(scores), np.concatenate(ones), np.concatenate(index)


def curve_from(
    conversations: Sequence[Conversation],
    rows: int,
    positions: Positions,
    cfg: TrainConfig,
    thresholds: Sequence[float],
) -> Curve:
    """The curve from ``positions`` read off ``conversations``: the first ``rows`` are the
    training rows (scored when left out), the rest copies of attacks with other answers (fitted
    on with their family, never scored)."""
    import numpy as np

    train_rows = conversations[:rows]
    fold = np.array(folds(train_rows) + [c.family for c in conversations[rows:]])
    scores, ones, index = left_out_scores(positions, fold, rows, cfg)
    attack = np.array([train_rows[i].attack for i in index], dtype=bool)
    family = np.array([train_rows[i].family for i in index])
    if not attack.any() or attack.all():
        raise ProbeGateError("probe-curve: no attacks or no benign rows left to score")
    points = []
    for t in thresholds:
        vote = (scores - t * ones).mean(1) > 0
        points.append(
            CurvePoint(
                threshold=float(t),
                attacks_open=float(vote[attack].mean()),
                benign_open=float(vote[~attack].mean()),
                by_family={
                    f: float(vote[attack & (family == f)].mean())
                    for f in sorted(set(family[attack].tolist()))
                },
            )
        )
    return Curve(
        layers=list(cfg.probe_gate.layers),
        attacks=int(attack.sum()),
        benign=int((~attack).sum()),
        points=points,
    )


def probe_curve(cfg: TrainConfig, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> Curve:
    """Read the training rows as ``finetune train`` would (base answers included) and compute
    the leave-one-family-out curve."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
    conversations, rows, positions = read_training(cfg, reading_model(cfg), tokenizer)
    return curve_from(conversations, rows, positions, cfg, thresholds)
