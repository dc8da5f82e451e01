from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from gateway.adapters import (
    Catalog,
    Status,
    load_adapter,
    load_adapters,
    weights_sha256,
    write_manifest,
)
from gateway.auth import Principal
from gateway.errors import ConfigError, ModelNotFound, PermissionDenied

REPO = Path(__file__).resolve().parents[2]
BASE = "smollm2-135m-instruct"
ALL = Principal("all", frozenset({"*"}))


def copy_adapter(tmp_path: Path, name: str, **changes: object) -> Path:
    folder = tmp_path / name
    shutil.copytree(REPO / "adapters" / "hardened", folder)
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    write_manifest(folder, {**manifest, "name": name, **changes})
    return folder


def test_repo_adapters_register_verified_and_active() -> None:
    adapters = load_adapters(REPO / "adapters", BASE)
    assert {"hardened", "support-assistant"} <= set(adapters)
    for adapter in adapters.values():
        assert (adapter.path / "adapter_config.json").is_file()
        assert adapter.manifest.sha256 == weights_sha256(adapter.path)
        assert adapter.status is Status.ACTIVE


def test_resolution_and_allow_lists() -> None:
    catalog = Catalog(BASE, load_adapters(REPO / "adapters", BASE))
    assert catalog.resolve("hardened", ALL).adapter is not None
    assert catalog.resolve(BASE, ALL).adapter is None
    limited = Principal("l", frozenset({"hardened"}))
    with pytest.raises(PermissionDenied):
        catalog.resolve(BASE, limited)
    with pytest.raises(PermissionDenied):
        catalog.resolve("support-assistant", limited)
    assert catalog.visible_to(limited) == ["hardened"]
    for name in ("HARDENED", "Hardened", "../hardened", "hardened/", "hardened ", "./hardened"):
        with pytest.raises(ModelNotFound):
            catalog.resolve(name, ALL)
    with pytest.raises(ModelNotFound):
        catalog.resolve(str(REPO / "adapters" / "hardened"), ALL)


def test_status_decides_what_is_served_and_loaded(tmp_path: Path) -> None:
    for name, status in (("cand", "candidate"), ("shad", "shadow"), ("old", "retired")):
        copy_adapter(tmp_path, name, status=status)
    copy_adapter(tmp_path, "live", status="active")
    catalog = Catalog(BASE, load_adapters(tmp_path, BASE))
    assert set(catalog.desired()) == {"shad", "live"}
    assert catalog.names() == [BASE, "live"]
    assert catalog.visible_to(ALL) == [BASE, "live"]
    for name in ("cand", "old", "shad"):  # "*" never reaches a shadow adapter
        with pytest.raises(ModelNotFound):
            catalog.resolve(name, ALL)
    evaluator = Principal("eval", frozenset({"shad"}))
    assert catalog.resolve("shad", evaluator).adapter is not None
    assert catalog.visible_to(evaluator) == ["shad"]


def test_sha256_mismatch_refuses_the_adapter(tmp_path: Path) -> None:
    folder = copy_adapter(tmp_path, "tampered")
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(ConfigError, match="does not match"):
        load_adapter(folder)


def test_write_manifest_hashes_checks_and_round_trips(tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    shutil.copytree(REPO / "adapters" / "hardened", folder)
    written = write_manifest(
        folder,
        {
            "name": "fresh",
            "base_model": BASE,
            "created_by": "finetune train run-7",
            "evaluation": {"refusal_rate": 0.97, "suite": {"n": 120}},
        },
    )
    assert written.status is Status.CANDIDATE  # a new adapter is never served by default
    assert written.sha256 == weights_sha256(folder)
    assert load_adapter(folder).manifest == written
    with pytest.raises(ConfigError, match="sha256"):
        write_manifest(folder, written.model_copy(update={"sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="must match folder"):
        write_manifest(folder, written.model_copy(update={"name": "other"}))


@pytest.mark.parametrize("path", ["..", "../hardened", "/etc", "a/../../b"])
def test_manifest_path_cannot_leave_its_folder(tmp_path: Path, path: str) -> None:
    folder = copy_adapter(tmp_path, "escape")
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    (folder / "manifest.yaml").write_text(yaml.safe_dump({**manifest, "path": path}))
    with pytest.raises(ConfigError, match="path"):
        load_adapter(folder)


def test_a_bad_manifest_fails_at_load(tmp_path: Path) -> None:
    shutil.copytree(REPO / "adapters" / "hardened", tmp_path / "other")
    with pytest.raises(ConfigError, match="must match folder"):
        load_adapters(tmp_path, BASE)
    manifest = yaml.safe_load((tmp_path / "other" / "manifest.yaml").read_text())
    manifest["name"] = "other"
    (tmp_path / "other" / "manifest.yaml").write_text(
        yaml.safe_dump({**manifest, "base_model": "llama"})
    )
    with pytest.raises(ConfigError, match="base model"):
        load_adapters(tmp_path, BASE)
    (tmp_path / "other" / "manifest.yaml").write_text(yaml.safe_dump({**manifest, "extra": 1}))
    with pytest.raises(ConfigError, match="extra"):
        load_adapters(tmp_path, BASE)
    (tmp_path / "other" / "manifest.yaml").write_text(
        yaml.safe_dump({**manifest, "status": "live"})
    )
    with pytest.raises(ConfigError, match="status"):
        load_adapters(tmp_path, BASE)
