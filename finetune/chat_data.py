"""Chat examples → token ids with the model's own chat template, loss on the answer only.

The prompt part (system + user + ``<|im_start|>assistant\\n``) is masked with -100, so the
adapter learns what to answer, not to predict users. The answer keeps its end-of-turn token,
so the adapter learns to stop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

IGNORE = -100


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def encode(
    messages: Sequence[dict[str, str]], tokenizer: Any, max_len: int
) -> dict[str, list[int]]:
    full: str = tokenizer.apply_chat_template(list(messages), tokenize=False)
    prompt: str = tokenizer.apply_chat_template(
        list(messages[:-1]), tokenize=False, add_generation_prompt=True
    )
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently inside the dialogue")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + answer_ids)[:max_len]
    labels = ([IGNORE] * len(prompt_ids) + answer_ids)[:max_len]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


class PadCollator:
    """Right-pads a batch to its longest row (labels with -100)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)

        def pad(key: str, value: int) -> Any:
            return torch.tensor([r[key] + [value] * (width - len(r[key])) for r in rows])

        return {
            "input_ids": pad("input_ids", self.pad_id),
            "attention_mask": pad("attention_mask", 0),
            "labels": pad("labels", IGNORE),
        }
