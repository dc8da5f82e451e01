"""Embeddings of corpus texts, cached on disk by text hash so training and evaluation share them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from gateway.detection.semantic import Embedder, FloatArray


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def embed_cached(texts: list[str], embedder: Embedder, path: Path) -> FloatArray:
    cache: dict[str, FloatArray] = {}
    if path.exists():
        with np.load(path) as data:
            cache = dict(zip(data["keys"].tolist(), data["emb"], strict=True))
    keys = [_key(t) for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in cache}.items())
    if missing:
        emb = embedder.encode([t for _, t in missing])
        cache.update(zip([k for k, _ in missing], emb, strict=True))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, keys=np.array(list(cache)), emb=np.stack(list(cache.values())))
    return np.stack([cache[k] for k in keys]).astype(np.float32)
