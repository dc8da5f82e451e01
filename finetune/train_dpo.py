"""``method: dpo``: LoRA trained on preference pairs with TRL's ``DPOTrainer``.

The loss is DPO's sigmoid loss plus ``sft_weight`` times the supervised loss on the chosen
answers (TRL's ``loss_type=["sigmoid", "sft"]``): the supervised term teaches the voice's
refusals word for word, the preference term pushes the base model's compliant answers to
attacks down and, on benign look-alikes, pushes the refusal down. The reference model is the
starting point: the base (PEFT: the adapter switched off) for a fresh LoRA, the starting
adapter for ``init_adapter`` (TRL keeps a frozen copy of it named ``ref``; only the trained
adapter is saved). Its log-probabilities are computed once, before the first step
(``precompute_ref_log_probs``), so a step costs two sequences per pair, not four.
"""

from __future__ import annotations

from typing import Any

from finetune.chat_data import read_jsonl
from finetune.train import TrainError, shuffled
from finetune.train_config import TrainConfig

FIELDS = ("prompt", "chosen", "rejected")


def preference_rows(cfg: TrainConfig) -> Any:
    """The pairs of ``cfg.dataset`` as a shuffled ``datasets.Dataset``."""
    rows = read_jsonl(cfg.dataset)
    for line, row in enumerate(rows, 1):
        if not all(isinstance(row.get(k), list) and row[k] for k in FIELDS):
            raise TrainError(
                f"{cfg.dataset} line {line} is not a preference pair (prompt, chosen, "
                "rejected): method dpo trains on preferences.jsonl from `finetune dataset build`"
            )
    return shuffled(cfg, [{k: row[k] for k in FIELDS} for row in rows])


def dpo_trainer(
    cfg: TrainConfig, model: Any, tokenizer: Any, data: Any, arguments: dict[str, Any]
) -> Any:
    """A ``DPOTrainer`` with the run's common ``TrainingArguments`` fields."""
    from trl import DPOConfig, DPOTrainer

    losses, weights = ["sigmoid"], [1.0]
    if cfg.dpo.sft_weight > 0:
        losses, weights = [*losses, "sft"], [*weights, cfg.dpo.sft_weight]
    args = DPOConfig(
        **arguments,
        beta=cfg.dpo.beta,
        loss_type=losses,
        loss_weights=weights,
        max_length=cfg.train.max_seq_len,
        precompute_ref_log_probs=True,
        bf16=False,  # TRL's default; LoRA here trains in float32 (QLoRA computes in bfloat16)
        gradient_checkpointing=False,
    )
    return DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
