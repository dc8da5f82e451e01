"""Where the detector's data lives: ``gateway/detection/data``, shipped in the package.

Each check takes its own file in its settings; ``None`` there means the bundled one.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
SIGNATURES = DATA_DIR / "signatures.yaml"
HEAD = DATA_DIR / "semantic_head.npz"
GIBBERISH = DATA_DIR / "gibberish.npz"
LEXICAL = DATA_DIR / "lexical_head.npz"
SCREEN = DATA_DIR / "screen.json"
SCREEN_ENCODER = DATA_DIR / "screen_encoder.npz"
BENIGN = DATA_DIR / "benign.yaml"


def bundled(path: Path | None, default: Path) -> Path:
    """A check's data file: the one its settings name, else the bundled ``default``."""
    return default if path is None else path


def cache_dir() -> Path:
    """Fetched corpora and embeddings (large, never committed)."""
    root = os.environ.get("DETECTION_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gateway-detection"
