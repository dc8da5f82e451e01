from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.adapters import Catalog, load_adapters
from gateway.auth import Principal
from gateway.errors import ConfigError, ModelNotFound, PermissionDenied

REPO = Path(__file__).resolve().parents[2]
BASE = "smollm2-135m-instruct"
ALL = Principal("all", frozenset({"*"}))


def test_repo_adapters_register() -> None:
    adapters = load_adapters(REPO / "adapters", BASE)
    assert {"hardened", "support-assistant"} <= set(adapters)
    assert all((a.path / "adapter_config.json").is_file() for a in adapters.values())


def test_resolution_and_allow_lists() -> None:
    catalog = Catalog(BASE, load_adapters(REPO / "adapters", BASE))
    assert catalog.resolve("hardened", ALL).adapter is not None
    assert catalog.resolve(BASE, ALL).adapter is None
    limited = Principal("l", frozenset({"hardened"}))
    with pytest.raises(PermissionDenied):
        catalog.resolve(BASE, limited)
    assert catalog.visible_to(limited) == ["hardened"]
    for name in ("HARDENED", "../hardened", "hardened/", str(REPO / "adapters" / "hardened")):
        with pytest.raises(ModelNotFound):
            catalog.resolve(name, ALL)


def test_a_bad_manifest_fails_at_load(tmp_path: Path) -> None:
    shutil.copytree(REPO / "adapters" / "hardened", tmp_path / "other")
    with pytest.raises(ConfigError, match="must match folder"):
        load_adapters(tmp_path, BASE)
    (tmp_path / "other" / "manifest.yaml").write_text("name: other\nbase_model: llama\n")
    with pytest.raises(ConfigError, match="base model"):
        load_adapters(tmp_path, BASE)
    (tmp_path / "other" / "manifest.yaml").write_text("name: other\nbase_model: x\nextra: 1\n")
    with pytest.raises(ConfigError, match="extra"):
        load_adapters(tmp_path, BASE)
