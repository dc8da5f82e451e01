"""Training half of ``finetune detector train`` (:mod:`finetune.detector`): the event rows (both
heads), and for the semantic head the rows a candidate is fitted on, the fit, the calibration,
and the whole-text verdict (the lexical head's are in :mod:`finetune.detector_heads`).

* **Training rows**: the detector corpus's ``train`` split, sampled as
  ``python -m gateway.detection.train head`` samples it (at most ``per_group`` rows per source
  and label, same seed), plus the event store's blocked input-stage user turns
  (:func:`finetune.sources.event_attacks`) whose text hashes to the ``train`` split
  (:func:`gateway.detection.datasets.split_of`, the corpus's own rule). Event texts are
  deduplicated, and those already in the corpus are skipped (they keep the corpus's label).
  ``test``-split events are never trained on: the gate measures them.
* **Candidate**: :func:`gateway.detection.train.fit_head` on those rows, then the threshold
  calibrated like :func:`gateway.detection.train.calibrate` (the 99.5th percentile score of
  benign train rows the head did not see).

Every embedding goes through :func:`gateway.detection.embeddings_cache.embed_cached`, so a
second run embeds only new texts. The encoder is an argument (MiniLM in the CLI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from finetune.records import Prompt
from gateway.detection.datasets import Row, split_of
from gateway.detection.semantic import FloatArray, Head

if TYPE_CHECKING:
    from gateway.detection.semantic import Embedder

EVENTS = "events"
"""The ``source`` of rows made from the event store."""


class TextEncoder(Protocol):
    """What embeds: normalised float32 rows, one per text (MiniLM's :class:`Embedder` is one)."""

    def encode(self, texts: list[str]) -> FloatArray: ...


Embed = Callable[[list[str]], FloatArray]


def cached(encoder: TextEncoder, cache: Path) -> Embed:
    """``texts -> embeddings`` through the shared on-disk cache."""
    from gateway.detection.embeddings_cache import embed_cached

    # embed_cached is typed for MiniLM's Embedder class but only calls encode(list[str]).
    return lambda texts: embed_cached(texts, cast("Embedder", encoder), cache)


@dataclass(frozen=True, slots=True)
class EventRows:
    train: list[Row]
    test: list[Row]
    duplicates: int
    """Event texts seen before in the store (kept once)."""
    in_corpus: int
    """Event texts already in the corpus (skipped: the corpus's label and split stand)."""


def event_rows(prompts: Iterable[Prompt], corpus: Iterable[Row]) -> EventRows:
    """Blocked prompts as attack rows (source ``events``, their family), split like the corpus."""
    known = {r.text.strip() for r in corpus}
    seen: set[str] = set()
    train: list[Row] = []
    test: list[Row] = []
    duplicates = in_corpus = 0
    for p in prompts:
        text = p.text.strip()
        if not text:
            continue
        if text in seen:
            duplicates += 1
            continue
        seen.add(text)
        if text in known:
            in_corpus += 1
            continue
        split = split_of(text)
        (test if split == "test" else train).append(Row(text, 1, EVENTS, p.family, split))
    return EventRows(train, test, duplicates, in_corpus)


def sampled_train(corpus: list[Row], per_group: int) -> list[Row]:
    """The corpus train split sampled as the bundled semantic head's training samples it."""
    from gateway.detection.train import sample

    return sample([r for r in corpus if r.split == "train"], per_group)


def training_rows(corpus: list[Row], events: EventRows, per_group: int) -> list[Row]:
    """:func:`sampled_train` plus every ``train``-split event row."""
    return sampled_train(corpus, per_group) + events.train


def fit_candidate(rows: list[Row], corpus: list[Row], embed: Embed) -> Head:
    from gateway.detection.train import fit_head

    head = fit_head(rows, embed([r.text for r in rows]))
    from gateway.detection.train import calibrate

    return calibrate(head, rows, corpus, embed)


def flagged(head: Head, emb: FloatArray) -> list[bool]:
    """Whole-text verdicts: ``max(head probability, kNN score) >= the head's threshold``, as
    :class:`gateway.detection.semantic.SemanticScorer` decides per window."""
    if not len(emb):
        return []
    h, knn, _ = head.scores(emb)
    return [bool(x) for x in np.maximum(h, knn) >= head.threshold]
