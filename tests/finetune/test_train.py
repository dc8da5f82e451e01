"""Training on a tiny random Llama (SmolLM2's tokenizer): seconds on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from finetune.train import TrainError, train, use_qlora
from finetune.train_config import TrainConfig, load_config
from gateway.adapters import Status, load_adapter
from tests.conftest import BASE
from tests.finetune.conftest import chat_rows, write_jsonl


def _config(tmp_path: Path, tiny_model_dir: Path, **train: object) -> TrainConfig:
    dataset = write_jsonl(tmp_path / "train.jsonl", chat_rows(12))
    return TrainConfig.model_validate(
        {
            "base_model": tiny_model_dir,
            "base_model_name": BASE,
            "dataset": dataset,
            "output_dir": tmp_path / "run",
            "adapter_name": "tiny-hardened",
            "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
            "train": {"batch_size": 4, "logging_steps": 1, "save_steps": 2, **train},
            "qlora": "off",
        }
    )


def test_train_writes_an_adapter_the_registry_accepts_and_resumes(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    cfg = _config(tmp_path, tiny_model_dir, max_steps=2)
    folder = train(cfg)
    assert folder == tmp_path / "run" / "tiny-hardened"
    adapter = load_adapter(folder)  # the gateway's own loader: manifest, PEFT files, sha256
    assert adapter.status is Status.CANDIDATE
    assert adapter.manifest.base_model == BASE
    training = adapter.manifest.evaluation["training"]
    assert isinstance(training, dict) and training["steps"] == 2
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["base_model_name_or_path"] == BASE
    assert (tmp_path / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir()

    # a second run with more steps continues from checkpoint-2
    cfg.train.max_steps = 4
    train(cfg)
    summary = json.loads((tmp_path / "run" / "training.json").read_text())
    assert summary["steps"] == 4
    assert summary["resumed_from"].endswith("checkpoint-2")


def test_same_seed_same_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    weights = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        cfg = _config(tmp_path / run, tiny_model_dir, max_steps=1)
        weights.append(load_file(train(cfg) / "adapter_model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_qlora_on_needs_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert use_qlora("auto") is False
    with pytest.raises(TrainError, match="CUDA"):
        use_qlora("on")


def test_config_is_strict(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "base_model: m\nbase_model_name: b\ndataset: d\noutput_dir: o\nadapter_name: a\n"
        "train: {epochs: 1, learnig_rate: 0.1}\n"
    )
    with pytest.raises(ValueError, match="learnig_rate"):
        load_config(path)
    repo_configs = sorted((Path(__file__).resolve().parents[2] / "finetune/configs").glob("*.yaml"))
    assert len(repo_configs) >= 2
    for repo_config in repo_configs:
        assert load_config(repo_config).lora.r <= 16
