from __future__ import annotations

from pathlib import Path

import pytest

from finetune.manifest import update, write_candidate
from gateway.adapters import Status, load_adapter
from gateway.errors import ConfigError
from tests.conftest import BASE


def _peft_folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


def test_candidate_manifest_is_accepted_and_updated(tmp_path: Path) -> None:
    folder = _peft_folder(tmp_path, "hardened")
    write_candidate(folder, name="hardened", base_model=BASE, description="d", evaluation={"a": 1})
    adapter = load_adapter(folder)
    assert adapter.status is Status.CANDIDATE
    assert adapter.manifest.created_by.startswith("finetune train")
    update(folder, evaluation={"gate": {"passed": True}}, status=Status.ACTIVE)
    adapter = load_adapter(folder)
    assert adapter.status is Status.ACTIVE
    assert adapter.manifest.evaluation == {"a": 1, "gate": {"passed": True}}


def test_changed_weights_are_refused(tmp_path: Path) -> None:
    folder = _peft_folder(tmp_path, "hardened")
    write_candidate(folder, name="hardened", base_model=BASE, description="", evaluation={})
    (folder / "adapter_model.safetensors").write_bytes(b"other weights")
    with pytest.raises(ConfigError, match="sha256"):
        load_adapter(folder)
