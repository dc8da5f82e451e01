"""The head registry of ``finetune detector train`` and the lexical head end to end: a tiny
corpus, real SQLite event stores filled through a policy (:mod:`tests.finetune.detector_world`)
and the real ``injection_lexical`` check loading what was installed.

The lexical head's extra benign texts (2,583 stdlib code chunks and 2,000 identifier sentences)
make one fit take 15 s here; these tests give it 20 identifier sentences instead
(``lexical_extra_benign`` patched): the same fit on less data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from finetune import detector_heads
from finetune.cli import app
from finetune.detector import RetrainConfig, retrain
from finetune.detector_heads import HEADS, LexicalKind, kind
from gateway.checks import build_check, known_checks
from gateway.detection import suffix_data
from gateway.detection import train as detection_train
from gateway.detection.datasets import split_of
from gateway.detection.lexical import load_lexical
from gateway.detection.train import SEED
from gateway.openai_api import Endpoint, Segment
from gateway.pipeline import Action, CheckContext, Stage
from tests.finetune.detector_world import Texts, n_texts, write_corpus, write_events

runner = CliRunner()
EXTRA = suffix_data.identifiers(20, SEED)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A small corpus file and the lexical head in use (fitted on the corpus alone)."""
    monkeypatch.setattr(detection_train, "lexical_extra_benign", lambda: EXTRA)
    monkeypatch.setenv("DETECTION_CACHE_DIR", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.jsonl"
    rows = write_corpus(corpus, attacks=60, benign=90)
    lexical = LexicalKind(None, tmp_path / "cache" / "emb.npz")
    lexical.fit(lexical.training_rows(rows, [], 1), rows).save(tmp_path / "current.npz")
    return {"corpus": corpus, "current": tmp_path / "current.npz"}


def config(world: dict[str, Path], tmp_path: Path, **fields: object) -> RetrainConfig:
    base: dict[str, object] = {
        "head": "lexical",
        "corpus": world["corpus"],
        "current": world["current"],
        "eval_per_group": 60,
        "out": tmp_path / "heads" / "lexical_head.npz",
        "report_dir": tmp_path / "report",
    }
    return RetrainConfig.model_validate(base | fields)


def blocks(head_file: Path, text: str) -> bool:
    check = build_check("injection_lexical", {"head_file": str(head_file)})
    ctx = CheckContext(Endpoint.CHAT, "m", Stage.INPUT)
    verdict = asyncio.run(check([Segment("user", text, 0, ("messages", 0, "content"))], ctx))
    return verdict.action is Action.BLOCK


def test_every_head_names_a_real_check_and_loads_its_bundled_file() -> None:
    assert set(HEADS) == {"lexical", "semantic"}
    assert detector_heads.DEFAULT == "lexical"
    for name, cls in HEADS.items():
        assert cls.name == name and cls.check in known_checks()
        assert 0 < cls(None, Path("unused")).load(cls.bundled).threshold < 1
    with pytest.raises(ValueError, match="not a lexical head"):
        LexicalKind(None, Path("unused")).load(HEADS["semantic"].bundled)


def test_an_unknown_head_is_refused_listing_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known: lexical, semantic"):
        kind("regex")
    with pytest.raises(ValidationError, match="known: lexical, semantic"):
        RetrainConfig.model_validate({"head": "regex", "out": "o.npz", "report_dir": "r"})
    args = ["detector", "train", "--head", "regex", "--report-dir", str(tmp_path / "r")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "unknown detector head 'regex'; known: lexical, semantic" in result.output
    assert not (tmp_path / "r").exists()


def test_lexical_trains_on_the_whole_train_split_and_the_train_split_events(
    world: dict[str, Path], tmp_path: Path
) -> None:
    corpus = [json.loads(line) for line in world["corpus"].read_text().splitlines()]
    texts = n_texts(Texts(1).novel_attack, 60)
    db = write_events(tmp_path / "events.sqlite3", texts)
    # --per-group is the semantic head's: 2 per group would sample 10 rows.
    outcome = retrain(config(world, tmp_path, events_db=str(db), per_group=2))
    train = [t for t in texts if split_of(t) == "train"]
    test = [t for t in texts if split_of(t) == "test"]
    assert train and test
    assert outcome.training["corpus_train_rows"] == sum(r["split"] == "train" for r in corpus)
    assert outcome.training["events_trained_on"] == len(train)
    assert outcome.training["events_held_out"] == len(test)
    assert outcome.training["extra_benign_code_and_identifiers"] == len(EXTRA)
    assert outcome.training["padded_attack_copies"] > 0
    # Each text ends in a unique tag; a tag is in the vocabulary (min_df=2) when the text and
    # its padded copy were both fitted on. Train-split events' tags are; held-out ones never.
    names = set(load_lexical(tmp_path / "report" / "candidate.npz").names)
    assert any(f"w:{t.split()[-1]}" in names for t in train)
    assert not any(f"w:{t.split()[-1]}" in names for t in test)
    # Held out means measured: the current head misses this new phrasing, the candidate not.
    assert outcome.candidate.events.n == len(test)
    assert outcome.current.events.rate == 0 and outcome.candidate.events.rate == 1


def test_the_gate_passes_installs_a_lexical_head_the_check_loads(
    world: dict[str, Path], tmp_path: Path
) -> None:
    texts = n_texts(Texts(1).novel_attack, 60)
    db = write_events(tmp_path / "events.sqlite3", texts)
    out = tmp_path / "heads" / "lexical_head.npz"
    out.parent.mkdir()
    out.write_bytes(world["current"].read_bytes())
    report = tmp_path / "report"
    args = ["detector", "train", "--events-db", str(db), "--corpus", str(world["corpus"])]
    args += ["--eval-per-group", "60", "--out", str(out), "--report-dir", str(report)]
    result = runner.invoke(app, args)  # no --head: lexical, the default policy's
    assert result.exit_code == 0, result.output
    assert "gate: PASS" in result.output
    assert out.with_name("lexical_head.npz.prev").read_bytes() == world["current"].read_bytes()
    assert out.read_bytes() == (report / "candidate.npz").read_bytes()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    data = json.loads((report / "detector.json").read_text())
    assert (data["head"], data["check"], data["current"]) == (
        "lexical",
        "injection_lexical",
        str(out),
    )
    assert data["per_group"] is None and data["installed"] is True
    md = (report / "report.md").read_text()
    assert md.startswith("# Lexical head: current vs candidate")
    assert "decoded views" in md and "the whole split" in md
    # The printed rule is the default policy's lexical rule with the new head, and the real
    # check with it blocks a held-out event that the check with the previous head let through.
    rule = yaml.safe_load(result.output[result.output.index("  - id: injection-lexical") :])[0]
    assert (rule["id"], rule["check"]) == ("injection-lexical", "injection_lexical")
    held_out = next(t for t in texts if split_of(t) == "test")
    assert not blocks(out.with_name("lexical_head.npz.prev"), held_out)
    assert blocks(Path(rule["settings"]["head_file"]), held_out)


def test_the_gate_fails_on_over_blocked_benign_events_and_leaves_the_head_alone(
    world: dict[str, Path], tmp_path: Path
) -> None:
    """An over-broad rule blocked every request to translate a document; taught as attacks,
    those make the candidate flag benign prompts, so it must not be installed."""
    db = write_events(tmp_path / "events.sqlite3", n_texts(Texts(4).translation, 60))
    out = tmp_path / "lexical_head.npz"
    out.write_bytes(b"the head in use")
    report = tmp_path / "report"
    args = ["detector", "train", "--head", "lexical", "--events-db", str(db)]
    args += ["--corpus", str(world["corpus"]), "--current", str(world["current"])]
    args += ["--out", str(out), "--report-dir", str(report), "--eval-per-group", "60"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "gate: FAIL" in result.output
    assert out.read_bytes() == b"the head in use"
    assert not out.with_name("lexical_head.npz.prev").exists()
    checks = json.loads((report / "detector.json").read_text())["gate"]["checks"]
    assert not checks["false_positives"]["pass"]
    assert checks["false_positives"]["candidate"] > checks["false_positives"]["current"]
