"""The SHA-256 of a file, the one way the project fingerprints what it loads.

Adapter weights (the registry checks them against their manifest), the lexical head a screen
was calibrated for, training datasets and base-model weights (finetune's manifests and saved
probe gates) are all hashed here, in 1 MiB blocks so that multi-gigabyte weights never sit in
memory whole.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file at ``path`` (OSError when it cannot be read)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
