"""The two charts: the training loss curve and the evaluation's before/after bars (matplotlib,
headless Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(history: Sequence[Mapping[str, float]], out: Path, title: str) -> Path:
    """``history``: the trainer's log entries; those with ``loss`` (and ``eval_loss``) are drawn."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if train:
        ax.plot(*zip(*train, strict=True), marker="o", markersize=3, label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def before_after(
    metrics: Mapping[str, tuple[float, float]], out: Path, title: str, labels: tuple[str, str]
) -> Path:
    """Grouped bars: for each metric (a rate in [0, 1]) the base and the adapter value."""
    plt = _pyplot()
    names = list(metrics)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.38
    xs = range(len(names))
    for offset, label, idx in ((-width / 2, labels[0], 0), (width / 2, labels[1], 1)):
        values = [metrics[n][idx] * 100 for n in names]
        bars = ax.bar([x + offset for x in xs], values, width, label=label)
        ax.bar_label(bars, fmt="%.0f%%", fontsize=8)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("%")
    ax.set_ylim(0, 110)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
