"""The answer's first tokens, weighted: where a chat model decides to refuse or to answer.

A supervised example's loss is the mean over its answer tokens. The decision the hardened
adapter is trained for sits in the first few of them ("Sorry, I can't ..." against "The capital
of France is ..."); the rest, the voice's reasons and the base model's own benign answers, which
the base already predicts well, outweighs it many times. With ``train.decision_tokens`` N > 0 the
first N answer tokens of every example weigh ``train.decision_weight`` W in the loss, every
other answer token 1, and the loss is the weighted mean over the batch:

    loss = sum(w_t * ce_t) / sum(w_t)        over the answer tokens t of the batch

(``decision_tokens: 0``, the default, or W = 1 is exactly the Trainer's own mean.)
:class:`DecisionWeightedTrainer` is the transformers ``Trainer`` with that loss; ``finetune
train`` uses it when ``decision_tokens`` is set.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer

from finetune.chat_data import IGNORE


def token_weights(labels: Any, tokens: int, weight: float) -> Any:
    """Per position of the *shifted* targets (``labels[:, 1:]``): ``weight`` for the first
    ``tokens`` answer tokens of each row, 1 for the others, 0 where the label is ignored."""
    target = labels[:, 1:]
    answer = target != IGNORE
    position = answer.long().cumsum(dim=1)  # 1 at a row's first answer token
    first = answer & (position <= tokens)
    return torch.where(first, float(weight), 1.0) * answer


def weighted_loss(logits: Any, labels: Any, tokens: int, weight: float) -> Any:
    """Next-token cross-entropy of ``logits`` against ``labels`` (``IGNORE`` masked), the
    weighted mean with :func:`token_weights`."""
    target = labels[:, 1:]
    ce = F.cross_entropy(
        logits[:, :-1].float().transpose(1, 2),
        target.clamp(min=0),  # ignored positions weigh 0 below
        reduction="none",
    )
    w = token_weights(labels, tokens, weight)
    return (ce * w).sum() / w.sum().clamp(min=1.0)


class DecisionWeightedTrainer(Trainer):
    """``Trainer`` whose loss is :func:`weighted_loss` (a per-batch mean, so the Trainer divides
    it by the gradient-accumulation steps as it does its own)."""

    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, decision_tokens: int, decision_weight: float, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.decision_tokens = decision_tokens
        self.decision_weight = decision_weight

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        labels = inputs["labels"]
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
        loss = weighted_loss(outputs.logits, labels, self.decision_tokens, self.decision_weight)
        return (loss, outputs) if return_outputs else loss
