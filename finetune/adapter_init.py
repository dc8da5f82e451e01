"""Create a LoRA adapter folder for the base model with PEFT, plus the gateway's manifest.

PEFT's default initialisation sets B = 0, so a new adapter answers exactly like the base model
until it is trained (``finetune train``). Used for starter adapters and in tests.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def init_adapter(
    base_dir: Path,
    out_dir: Path,
    *,
    name: str,
    base_model_name: str,
    description: str,
    rank: int = 8,
    alpha: int = 16,
    targets: tuple[str, ...] = DEFAULT_TARGETS,
    seed: int = 0,
) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=list(targets),
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out_dir), safe_serialization=True)
    write_manifest(out_dir, name=name, base_model=base_model_name, description=description)
    return out_dir


def write_manifest(out_dir: Path, *, name: str, base_model: str, description: str) -> None:
    """A starter adapter's manifest: active (served), sha256 of its fresh weights."""
    from gateway.adapters import write_manifest as write_gateway_manifest

    manifest = {"name": name, "base_model": base_model, "description": description}
    write_gateway_manifest(
        out_dir, {**manifest, "created_by": "finetune adapter-init", "status": "active"}
    )
