from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth import KeyStore, add_key
from gateway.errors import AuthenticationFailed, ConfigError


def test_keys_are_stored_hashed_and_authenticate(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = add_key(path, "alice", ["hardened"])
    assert key not in path.read_text()
    principal = KeyStore.load(path).authenticate(f"Bearer {key}")
    assert principal.name == "alice" and principal.may_use("hardened")
    assert not principal.may_use("smollm2-135m-instruct")
    assert path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Token abc", "Bearer gw-nope"])
def test_bad_headers_fail(tmp_path: Path, header: str | None) -> None:
    add_key(tmp_path / "k.json", "a")
    with pytest.raises(AuthenticationFailed):
        KeyStore.load(tmp_path / "k.json").authenticate(header)


def test_duplicate_names_and_bad_files_are_config_errors(tmp_path: Path) -> None:
    add_key(tmp_path / "k.json", "a")
    with pytest.raises(ConfigError):
        add_key(tmp_path / "k.json", "a")
    (tmp_path / "bad.json").write_text('{"keys": [{"name": "a", "sha256": "xyz"}]}')
    with pytest.raises(ConfigError):
        KeyStore.load(tmp_path / "bad.json")
