from __future__ import annotations

from pathlib import Path

from finetune.plots import before_after, loss_curve


def test_charts_are_pngs(tmp_path: Path) -> None:
    history = [{"step": 1.0, "loss": 2.0}, {"step": 2.0, "loss": 1.5}, {"train_runtime": 3.0}]
    for out in (
        loss_curve(history, tmp_path / "loss.png", "loss"),
        before_after({"asr": (0.9, 0.1)}, tmp_path / "bars.png", "t", ("base", "adapter")),
    ):
        assert out.read_bytes()[:4] == b"\x89PNG"
