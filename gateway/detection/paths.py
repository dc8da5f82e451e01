"""Where the detector's data lives: ``data/detection`` in the repository (override per check)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "detection"
SIGNATURES = DATA_DIR / "signatures.yaml"
HEAD = DATA_DIR / "semantic_head.npz"
GIBBERISH = DATA_DIR / "gibberish.npz"
BENIGN = DATA_DIR / "benign.yaml"


def cache_dir() -> Path:
    """Fetched corpora and embeddings (large, never committed)."""
    root = os.environ.get("GATEWAY_DETECTION_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gateway-detection"
