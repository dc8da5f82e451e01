"""The decision-weighted loss: which tokens it weights, that W = 1 is the Trainer's own loss, and
that `finetune train` with it learns the answer's first token faster than without."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from finetune.chat_data import IGNORE, PadCollator, encode
from finetune.decision_loss import token_weights, weighted_loss
from finetune.train import train
from finetune.train_config import TrainConfig
from tests.conftest import BASE
from tests.finetune.conftest import chat_rows, tiny_train_config

X = IGNORE


def test_the_first_answer_tokens_of_each_row_weigh_w_and_ignored_positions_nothing() -> None:
    labels = torch.tensor(
        [
            [X, X, 5, 6, 7, 8, X],  # two prompt tokens, four answer tokens, one pad
            [X, 9, 10, 11, X, X, X],  # one prompt token, three answer tokens, three pads
        ]
    )
    weights = token_weights(labels, tokens=2, weight=5.0)
    # positions of the shifted targets labels[:, 1:]
    assert weights.tolist() == [[0, 5, 5, 1, 1, 0], [5, 5, 1, 0, 0, 0]]
    assert token_weights(labels, tokens=0, weight=5.0).tolist() == [
        [0, 1, 1, 1, 1, 0],
        [1, 1, 1, 0, 0, 0],
    ]


def test_the_loss_is_the_weighted_mean_of_the_token_cross_entropies() -> None:
    torch.manual_seed(0)
    labels = torch.tensor([[X, 3, 1, 4, X], [X, X, 2, 0, 1]])
    logits = torch.randn(2, 5, 6)
    expected_num, expected_den = 0.0, 0.0
    for row in range(2):
        seen = 0
        for t in range(4):  # logits at t predict labels at t + 1
            target = int(labels[row, t + 1])
            if target == X:
                continue
            seen += 1
            ce = -torch.log_softmax(logits[row, t], dim=-1)[target].item()
            w = 7.0 if seen <= 1 else 1.0
            expected_num += w * ce
            expected_den += w
    got = weighted_loss(logits, labels, tokens=1, weight=7.0).item()
    assert got == pytest.approx(expected_num / expected_den, rel=1e-5)


def _batch(tiny_model_dir: Path) -> tuple[Any, dict[str, Any]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    answered = {
        "messages": [
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris is the capital of France."},
        ]
    }
    rows = [encode(r["messages"], tokenizer, 128) for r in [*chat_rows(2), answered]]  # type: ignore[arg-type]
    return model, PadCollator(int(tokenizer.pad_token_id or 0))(rows)


def test_weight_one_is_the_trainers_own_loss(tiny_model_dir: Path) -> None:
    model, batch = _batch(tiny_model_dir)
    with torch.no_grad():
        out = model(**batch)  # transformers' causal-LM loss: the mean over answer tokens
    for tokens, weight in ((0, 9.0), (3, 1.0)):
        mine = weighted_loss(out.logits, batch["labels"], tokens, weight)
        assert mine.item() == pytest.approx(out.loss.item(), rel=1e-5)
    assert weighted_loss(out.logits, batch["labels"], 3, 9.0).item() != pytest.approx(
        out.loss.item(), rel=1e-3
    )


def _first_token_loss(tiny_model_dir: Path, adapter: Path) -> float:
    """Cross-entropy of the answer's first token ("I" of "I can't help with that.")."""
    from peft import PeftModel

    model, batch = _batch(tiny_model_dir)
    model = PeftModel.from_pretrained(model, adapter)
    with torch.no_grad():
        logits = model(**batch).logits[:2, :-1]  # the two refusal rows
    labels = batch["labels"][:2]
    first = token_weights(labels, tokens=1, weight=2.0) == 2.0
    ce = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), labels[:, 1:].clamp(min=0), reduction="none"
    )
    return float(ce[first].mean())


def test_finetune_train_with_decision_tokens_learns_the_first_token_faster(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    steps = {"max_steps": 6, "learning_rate": 3e-2}
    plain = train(tiny_train_config(tmp_path / "plain", tiny_model_dir, **steps))
    weighted = train(
        tiny_train_config(
            tmp_path / "weighted", tiny_model_dir, decision_tokens=1, decision_weight=50.0, **steps
        )
    )
    assert _first_token_loss(tiny_model_dir, weighted) < _first_token_loss(tiny_model_dir, plain)
    summary = json.loads((tmp_path / "weighted" / "run" / "training.json").read_text())
    assert (summary["decision_tokens"], summary["decision_weight"]) == (1, 50.0)


def test_decision_weighting_is_for_the_supervised_method(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="method sft only"):
        TrainConfig.model_validate(
            {
                "base_model": tmp_path,
                "base_model_name": BASE,
                "method": "dpo",
                "dataset": tmp_path / "preferences.jsonl",
                "output_dir": tmp_path / "run",
                "adapter_name": "x",
                "train": {"decision_tokens": 2},
            }
        )
