"""``finetune probe-curve``: the folds, the leave-one-family-out scores on synthetic positions
(a family only its own feature reveals stays closed when left out), and the command end to end
on the tiny random Llama."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from finetune.cli import app
from finetune.probe_curve import curve_from, folds
from finetune.probe_gate import Conversation, Positions, ProbeGateError
from finetune.train_config import TrainConfig
from tests.conftest import BASE
from tests.finetune.conftest import write_jsonl
from tests.finetune.test_probe_gate import gate_rows

MESSAGES = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def conv(attack: bool, family: str) -> Conversation:
    return Conversation(MESSAGES, attack, family)


def test_twins_go_with_their_family_and_other_benign_rows_are_dealt() -> None:
    rows = [
        conv(True, "b"),
        conv(True, "a"),
        conv(False, "benign"),
        conv(False, "a"),  # a twin of family a
        conv(False, "benign"),
        conv(False, "benign"),
    ]
    assert folds(rows) == ["b", "a", "a", "a", "b", "a"]


def test_one_family_cannot_be_left_out() -> None:
    with pytest.raises(ProbeGateError, match="at least two families"):
        folds([conv(True, "a"), conv(False, "benign")])


def synthetic(seed: int = 0) -> tuple[list[Conversation], Positions]:
    """Families a and b show as feature 1 from the decision on, family c only as feature 2;
    benign rows show neither. Feature 0 is about 1 everywhere (the constant direction)."""
    rng = np.random.default_rng(seed)
    conversations: list[Conversation] = []
    rows, attack, offset, index = [], [], [], []
    for n in range(360):
        family = "abc"[n % 3]
        is_attack = n % 2 == 0
        conversations.append(conv(is_attack, family if is_attack else "benign"))
        for k in range(-3, 6):
            x = rng.normal(0, 0.3, 5)
            x[0] = 1.0 + rng.normal(0, 0.02)
            signal = is_attack and 0 <= k <= 3
            x[1] += 2.0 if signal and family != "c" else -1.0
            x[2] += 2.0 if signal and family == "c" else -1.0
            rows.append(x)
            attack.append(is_attack)
            offset.append(k)
            index.append(n)
    positions = Positions(
        features={0: np.array(rows, dtype=np.float32)},
        attack=np.array(attack),
        offset=np.array(offset),
        conversation=np.array(index),
    )
    return conversations, positions


def synthetic_config() -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "base_model": "m",
            "base_model_name": BASE,
            "dataset": "d",
            "output_dir": "o",
            "adapter_name": "a",
            "method": "probe_gate",
            "probe_gate": {"layers": [0], "window": 3},
        }
    )


def test_a_family_the_other_families_do_not_reveal_stays_closed_when_left_out() -> None:
    conversations, positions = synthetic()
    curve = curve_from(conversations, len(conversations), positions, synthetic_config(), [0.0])
    point = curve.points[0]
    assert curve.attacks == 180 and curve.benign == 180  # every row scored once
    assert point.by_family["a"] > 0.95 and point.by_family["b"] > 0.95
    assert point.by_family["c"] < 0.05  # fitted without c, the gates never saw feature 2
    assert point.benign_open < 0.05


def test_a_higher_threshold_opens_on_fewer_rows() -> None:
    conversations, positions = synthetic(1)
    curve = curve_from(
        conversations, len(conversations), positions, synthetic_config(), [-4.0, 0.0, 4.0, 8.0]
    )
    attacks = [p.attacks_open for p in curve.points]
    benign = [p.benign_open for p in curve.points]
    assert attacks == sorted(attacks, reverse=True) and attacks[0] > attacks[-1]
    assert benign == sorted(benign, reverse=True) and benign[0] > benign[-1]


def test_copies_of_attacks_are_fitted_on_but_not_scored() -> None:
    conversations, positions = synthetic()
    rows = len(conversations) - 60  # the last 60 conversations play the base-answer copies
    curve = curve_from(conversations, rows, positions, synthetic_config(), [0.0])
    assert curve.attacks + curve.benign == rows


def test_probe_curve_command_on_the_tiny_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = gate_rows(24)
    for i, row in enumerate(rows):
        meta = row["meta"]
        assert isinstance(meta, dict)
        meta["family"] = ("override", "extraction")[i // 2 % 2] if i % 2 == 0 else "benign"
    config = tmp_path / "gate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "base_model": str(tiny_model_dir),
                "base_model_name": BASE,
                "dataset": str(write_jsonl(tmp_path / "train.jsonl", rows)),
                "output_dir": str(tmp_path / "run"),
                "adapter_name": "tiny-gated",
                "method": "probe_gate",
                "probe_gate": {"layers": [0, 1], "base_answer_tokens": 4},
                "qlora": "off",
            }
        )
    )
    out = tmp_path / "curve.json"
    thresholds = ["--threshold", "0", "--threshold", "50"]
    result = CliRunner().invoke(
        app, ["probe-curve", "--config", str(config), *thresholds, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "| threshold | attacks the gates open on |" in result.output
    curve = json.loads(out.read_text())
    assert curve["attacks"] == 12 and curve["benign"] == 12 and curve["layers"] == [0, 1]
    low, high = curve["points"]
    assert set(low["by_family"]) == {"override", "extraction"}
    assert high["attacks_open"] <= low["attacks_open"] and high["benign_open"] <= low["benign_open"]
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written but the curve


def test_probe_curve_needs_a_probe_gate_config(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "finetune" / "configs" / "smollm2-cpu.yaml"
    result = CliRunner().invoke(app, ["probe-curve", "--config", str(shipped)])
    assert result.exit_code == 2 and "needs method probe_gate" in result.output
