"""``finetune train``: PEFT LoRA on the base model vLLM serves, with the transformers Trainer.

* seeds: ``transformers.set_seed(seed)`` (Python, NumPy, torch) and the Trainer's data seed;
* resumable: checkpoints every ``save_steps`` in ``output_dir/checkpoints``; a second run with
  the same ``output_dir`` continues from the last one (``--fresh`` starts over);
* a progress bar (the Trainer's tqdm) and ``output_dir/loss.png``;
* QLoRA: with ``qlora: auto`` (default) the base is loaded in 4 bits through bitsandbytes when
  CUDA is available, plain float32 LoRA otherwise; ``on`` fails without CUDA + bitsandbytes;
* ``init_adapter``: start from an existing adapter's LoRA weights instead of a fresh LoRA
  (supervised first, then ``method: dpo`` from that adapter);
* ``method: probe_gate``: probe-gated neurons instead of a LoRA of ``lora``'s shape
  (finetune/probe_gate.py);
* multi-GPU: ``accelerate launch -m finetune.cli train ...`` runs the same code under DDP (the
  Trainer reads the launcher's environment); only the main process writes the adapter.

Output: ``output_dir/<adapter_name>/`` with ``adapter_config.json``,
``adapter_model.safetensors`` and the gateway's ``manifest.yaml`` (status ``candidate``; the
folder is named after the adapter because the registry requires it); ``output_dir/loss.png`` and
``output_dir/training.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from finetune.chat_data import PadCollator, encode, read_jsonl
from finetune.manifest import write_candidate
from finetune.plots import loss_curve
from finetune.train_config import TrainConfig
from gateway.hashing import file_sha256

CHECKPOINTS = "checkpoints"


class TrainError(RuntimeError):
    """The configuration cannot be trained as asked (e.g. QLoRA without CUDA)."""


def use_qlora(mode: str) -> bool:
    import torch

    if mode == "off":
        return False
    cuda = torch.cuda.is_available()
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        has_bnb = False
    else:
        has_bnb = True
    if mode == "on" and not (cuda and has_bnb):
        raise TrainError("qlora: on needs CUDA and the bitsandbytes package")
    return cuda and has_bnb


def load_model(cfg: TrainConfig) -> Any:
    if cfg.init_adapter is not None and not (cfg.init_adapter / "adapter_config.json").is_file():
        raise TrainError(f"init_adapter {cfg.init_adapter}: no adapter_config.json there")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if use_qlora(cfg.qlora):
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, quantization_config=quant)
        model = prepare_model_for_kbit_training(model)  # type: ignore[no-untyped-call]
    else:
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=torch.float32)
    if cfg.init_adapter is not None:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(cfg.init_adapter), is_trainable=True)
    layers = None
    if cfg.lora.last_layers is not None:
        total = int(model.config.num_hidden_layers)
        layers = list(range(max(0, total - cfg.lora.last_layers), total))
    lora = LoraConfig(
        layers_to_transform=layers,
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def shuffled(cfg: TrainConfig, rows: list[dict[str, Any]]) -> Any:
    """``rows`` as a ``datasets.Dataset``, shuffled by the seed, cut to ``max_examples``."""
    from datasets import Dataset

    if not rows:
        raise TrainError(f"{cfg.dataset} has no examples")
    ds = Dataset.from_list(rows).shuffle(seed=cfg.seed)
    if cfg.train.max_examples is not None:
        ds = ds.select(range(min(cfg.train.max_examples, len(ds))))
    return ds


def tokenized(cfg: TrainConfig, tokenizer: Any) -> Any:
    ds = shuffled(cfg, [{"messages": r["messages"]} for r in read_jsonl(cfg.dataset)])
    return ds.map(
        lambda r: encode(r["messages"], tokenizer, cfg.train.max_seq_len),
        remove_columns=["messages"],
        desc="tokenize",
    )


def arguments(cfg: TrainConfig) -> dict[str, Any]:
    """The ``TrainingArguments`` fields both methods share."""
    import torch

    t = cfg.train
    return {
        "output_dir": str(cfg.output_dir / CHECKPOINTS),
        "num_train_epochs": t.epochs,
        "max_steps": t.max_steps,
        "per_device_train_batch_size": t.batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "learning_rate": t.learning_rate,
        "warmup_steps": t.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        "weight_decay": t.weight_decay,
        "lr_scheduler_type": "cosine",
        "logging_steps": t.logging_steps,
        "save_strategy": "steps",
        "save_steps": t.save_steps,
        "save_total_limit": t.save_total_limit,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "report_to": [],
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": torch.cuda.is_available(),
        "disable_tqdm": False,
    }


def trainer_for(cfg: TrainConfig, tokenizer: Any) -> tuple[Any, int, dict[str, Any]]:
    """(the method's trainer, the number of training examples, what training.json adds)."""
    from transformers import Trainer, TrainingArguments

    if cfg.method == "dpo":
        from finetune.train_dpo import dpo_trainer, preference_rows

        pairs = preference_rows(cfg)
        trainer = dpo_trainer(cfg, load_model(cfg), tokenizer, pairs, arguments(cfg))
        return trainer, len(pairs), {}
    extra: dict[str, Any] = {}
    if cfg.method == "probe_gate":
        from finetune.probe_gate import gated_model

        model, extra["probe_gate"] = gated_model(cfg, tokenizer)
        extra["qlora"] = False  # the gates read the base model's rows: it is loaded in float32
    else:
        model = load_model(cfg)
    data = tokenized(cfg, tokenizer)
    common: dict[str, Any] = {
        "model": model,
        "args": TrainingArguments(**arguments(cfg)),
        "train_dataset": data,
        "data_collator": PadCollator(int(tokenizer.pad_token_id)),
    }
    if cfg.train.decision_tokens > 0:
        from finetune.decision_loss import DecisionWeightedTrainer

        weighted = DecisionWeightedTrainer(
            **common,
            decision_tokens=cfg.train.decision_tokens,
            decision_weight=cfg.train.decision_weight,
        )
        return weighted, len(data), extra
    return Trainer(**common), len(data), extra


def train(cfg: TrainConfig, *, fresh: bool = False) -> Path:
    """Train, write the adapter folder, return its path."""
    from transformers import AutoTokenizer, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    set_seed(cfg.seed)
    checkpoints = cfg.output_dir / CHECKPOINTS
    if fresh and checkpoints.exists():
        shutil.rmtree(checkpoints)
    tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    trainer, n, extra = trainer_for(cfg, tokenizer)
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None  # type: ignore[no-untyped-call]
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=last)
    took = time.monotonic() - started
    adapter = cfg.output_dir / cfg.adapter_name
    if trainer.is_world_process_zero():
        _write_adapter(cfg, trainer, adapter, result, took, resumed_from=last, n=n, extra=extra)
    return adapter


def _write_adapter(
    cfg: TrainConfig,
    trainer: Any,
    adapter: Path,
    result: Any,
    took: float,
    *,
    resumed_from: str | None,
    n: int,
    extra: dict[str, Any] | None = None,
) -> None:
    if adapter.exists():
        shutil.rmtree(adapter)
    # only the trained adapter: DPO from an init_adapter also holds TRL's frozen "ref" copy
    trainer.model.save_pretrained(
        str(adapter), safe_serialization=True, selected_adapters=["default"]
    )
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = cfg.base_model_name  # no local paths in the artefact
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    history = trainer.state.log_history
    loss_curve(history, cfg.output_dir / "loss.png", f"{cfg.adapter_name}: LoRA training loss")
    losses = [h["loss"] for h in history if "loss" in h]
    summary = {
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "examples": n,
        "train_loss": result.training_loss,
        "first_logged_loss": losses[0] if losses else None,
        "last_logged_loss": losses[-1] if losses else None,
        "seconds": round(took, 1),
        "resumed_from": resumed_from,
        "qlora": use_qlora(cfg.qlora),
        "method": cfg.method,
        "decision_tokens": cfg.train.decision_tokens,
        "decision_weight": cfg.train.decision_weight,
        "init_adapter": str(cfg.init_adapter) if cfg.init_adapter else None,
        **(extra or {}),  # the method's own figures; overrides what it knows better
    }
    (cfg.output_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_candidate(
        adapter,
        name=cfg.adapter_name,
        base_model=cfg.base_model_name,
        description=cfg.description,
        evaluation={
            "dataset": {"path": str(cfg.dataset), "sha256": file_sha256(cfg.dataset)},
            "training": {k: v for k, v in summary.items() if k != "resumed_from"},
        },
    )
