"""The training configuration (YAML, strict: a misspelt key is an error, not a default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.adapters import NAME_PATTERN


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1, le=16, description="vLLM serves with --max-lora-rank 16")
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1,
    )
    last_layers: int | None = Field(
        default=None,
        ge=1,
        description="adapt only the top N decoder layers: the backward pass stops there, "
        "which roughly halves CPU training time on small bases",
    )


class Optimisation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(default=2.0, gt=0)
    max_steps: int = Field(default=-1, description="> 0 overrides epochs")
    batch_size: int = Field(default=8, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0)
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_seq_len: int = Field(default=384, ge=16)
    max_examples: int | None = Field(
        default=None, ge=1, description="train on the first N (shuffled)"
    )
    logging_steps: int = Field(default=5, ge=1)
    save_steps: int = Field(default=25, ge=1, description="checkpoint interval (resume point)")
    save_total_limit: int = Field(default=2, ge=1)
    decision_tokens: int = Field(
        default=0,
        ge=0,
        description="supervised: the first N answer tokens, where the model decides between "
        "refusing and answering, weigh decision_weight in the loss (0: plain mean; "
        "finetune/decision_loss.py)",
    )
    decision_weight: float = Field(default=1.0, ge=1.0, description="see decision_tokens")


class DpoSettings(BaseModel):
    """``method: dpo``: TRL's DPO (sigmoid loss) plus a supervised term on the chosen answers,
    on LoRA; the reference model is the base (the adapter switched off)."""

    model_config = ConfigDict(extra="forbid")

    beta: float = Field(default=0.1, gt=0, description="how far from the base DPO may move")
    sft_weight: float = Field(
        default=1.0,
        ge=0,
        description="weight of the supervised loss on the chosen answers (0: DPO alone; the "
        "adapter then learns to prefer the refusal but not to say it word for word)",
    )


class ProbeGateSettings(BaseModel):
    """``method: probe_gate`` (finetune/probe_gate.py): one SwiGLU neuron per layer opened by a
    logistic probe on the base model's MLP input; only what the neuron writes is trained."""

    model_config = ConfigDict(extra="forbid")

    layers: list[int] = Field(
        default=[14, 16, 18, 20, 22],
        min_length=1,
        description="decoder layers that get a gated neuron (SmolLM2-135M has 0-29)",
    )
    threshold: float = Field(
        default=2.0, description="the gate opens where the probe's logit exceeds this"
    )
    window: int = Field(
        default=3,
        ge=0,
        description="on attacks the gate is fitted to stay open on this many answer positions "
        "after the decision position (the refusal's first tokens)",
    )
    c: float = Field(default=1.0, gt=0, description="inverse L2 strength of the probes")
    prompt_positions: int = Field(
        default=16, ge=0, description="prompt positions sampled per conversation (negatives)"
    )
    answer_positions: int = Field(
        default=32, ge=1, description="answer positions read per conversation"
    )
    base_answer_tokens: int = Field(
        default=24,
        ge=1,
        description="each training attack is also read with the base model's own greedy "
        "answer of this many tokens, so the gate stays open when the model starts to comply",
    )


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: Path = Field(description="the safetensors folder vLLM serves")
    base_model_name: str = Field(description="the public base model name (manifest)")
    method: Literal["sft", "dpo", "probe_gate"] = Field(
        default="sft",
        description="sft: supervised on train.jsonl; dpo: preference pairs (preferences.jsonl); "
        "probe_gate: supervised, through probe-gated neurons (see probe_gate)",
    )
    dataset: Path = Field(
        description="train.jsonl (sft) or preferences.jsonl (dpo) from `finetune dataset build`"
    )
    output_dir: Path = Field(description="checkpoints/, adapter/, loss.png, training.json")
    adapter_name: str = Field(pattern=NAME_PATTERN)
    description: str = "Adversarially hardened LoRA adapter (finetune loop)."
    seed: int = 0
    lora: LoraSettings = LoraSettings()
    init_adapter: Path | None = Field(
        default=None,
        description="continue from this adapter's LoRA weights (e.g. the supervised run's "
        "folder) instead of a fresh LoRA; its rank, alpha and layers replace `lora`",
    )
    train: Optimisation = Optimisation()
    dpo: DpoSettings = DpoSettings()
    probe_gate: ProbeGateSettings = ProbeGateSettings()
    qlora: Literal["off", "auto", "on"] = Field(
        default="auto", description="4-bit base via bitsandbytes: auto = when CUDA is available"
    )

    @model_validator(mode="after")
    def _decision_weighting_is_supervised(self) -> TrainConfig:
        if self.method != "sft" and self.train.decision_tokens > 0:
            raise ValueError("train.decision_tokens weights the supervised loss: method sft only")
        return self

    @model_validator(mode="after")
    def _probe_gate_builds_its_own_lora(self) -> TrainConfig:
        if self.method == "probe_gate":
            given = sorted({"lora", "init_adapter"} & self.model_fields_set)
            if given:
                raise ValueError(
                    f"method probe_gate builds its own rank-1 LoRAs: drop {', '.join(given)}"
                )
            if self.qlora == "on":
                raise ValueError("method probe_gate reads the base model's rows: qlora off or auto")
        elif "probe_gate" in self.model_fields_set:
            raise ValueError("probe_gate settings apply to method probe_gate only")
        return self


def load_config(path: Path, **overrides: object) -> TrainConfig:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.model_validate(data)
