import hashlib
import os
from pathlib import Path

import pytest

from gateway.hashing import BLOCK, file_sha256


def test_hashes_across_block_boundaries(tmp_path: Path) -> None:
    data = os.urandom(2 * BLOCK + 12345)
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert file_sha256(path) != hashlib.sha256(data).hexdigest()


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert file_sha256(path) == hashlib.sha256(b"").hexdigest()


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        file_sha256(tmp_path / "absent")
