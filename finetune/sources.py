"""Where prompts come from: the committed seed files, the gateway's event store, and
(optionally) the detector's labelled corpora fetched from PyPI wheels.

Event-store prompts are the user turns of *input-stage* events whose action is one of
``actions`` (block by default), with their stored masking (``<EMAIL>``, ``<SECRET>`` ...). The
family is the first finding's family, else its rule name. A blocked request is not always an
attack (a false positive teaches refusal of something benign): review the dataset card's
counts, and narrow with ``--events-since`` or the actions.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from finetune.records import Prompt

DATA_DIR = Path(__file__).resolve().parent / "data"
SEED_ATTACKS = DATA_DIR / "seed_attacks.yaml"
NEAR_MISS = DATA_DIR / "benign_near_miss.yaml"
BENIGN_TWINS = DATA_DIR / "benign_twins.yaml"
FOLLOW_UP_OPENERS = DATA_DIR / "follow_up_openers.yaml"

DetectorSplit = Literal["train", "test"]
DETECTOR_BENIGN = "detector-benign"
"""The source of the detector's curated benign prompts."""


class SeedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    families: dict[str, list[str]] = Field(min_length=1)


class OpenersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    openers: dict[str, str] = Field(min_length=1)


class NearMissFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompts: list[str] = Field(min_length=1)


def seed_attacks(path: Path = SEED_ATTACKS) -> list[Prompt]:
    seeds = SeedFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    return [
        Prompt(text.strip(), "attack", family, "seed")
        for family, texts in seeds.families.items()
        for text in texts
    ]


def near_miss(path: Path = NEAR_MISS) -> list[Prompt]:
    data = NearMissFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    return [Prompt(text.strip(), "benign", "benign", "near-miss") for text in data.prompts]


def benign_twins(path: Path = BENIGN_TWINS) -> list[Prompt]:
    """Benign prompts in the form of an attack family's seeds (same file layout as the seeds):
    kind ``benign``, source ``twin``, and the family they mirror, which decides their split."""
    twins = SeedFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    return [
        Prompt(text.strip(), "benign", family, "twin")
        for family, texts in twins.families.items()
        for text in texts
    ]


def detector_benign(split: DetectorSplit | None = None) -> list[Prompt]:
    """The detector's curated benign traffic (``gateway/detection/data/benign.yaml``, written
    for this project), all of it or one split of it: the detector's own split of its rows (a hash
    of the text, 20% ``test``), so one set of curated rows is held out of every training in the
    project. ``finetune dataset build`` trains on the ``train`` rows (``curated_benign``) and
    ``finetune eval`` asks the ``test`` rows by default."""
    from gateway.detection.datasets import curated_benign

    return [
        Prompt(r.text, "benign", "benign", DETECTOR_BENIGN)
        for r in curated_benign()
        if split is None or r.split == split
    ]


def follow_up_openers(path: Path = FOLLOW_UP_OPENERS) -> dict[str, str]:
    """For each follow-up of the detector's curated traffic ("Make your answer shorter,
    please."), the question it follows: ``finetune eval`` asks the follow-up after the base
    model's answer to that question, as users do."""
    data = OpenersFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    return {k.strip(): v.strip() for k, v in data.openers.items()}


def event_attacks(
    store: str | Path, *, actions: Iterable[str] = ("block",), since: datetime | None = None
) -> list[Prompt]:
    """User turns of input-stage events with one of ``actions``, from an existing store: a
    SQLite path or a URL (``postgresql://...``), opened with the gateway's ``open_db``."""
    from gateway.events import open_db

    wanted = set(actions)
    db = open_db(store, create=False)
    try:
        out = []
        for event in db.events(since):
            if event.stage != "input" or event.action not in wanted:
                continue
            family = next((f.family for f in event.findings if f.family), None)
            family = family or (event.findings[0].rule if event.findings else "unknown")
            for message in event.messages:
                if message.role == "user" and message.text.strip():
                    out.append(Prompt(message.text.strip(), "attack", family, "events"))
        return out
    finally:
        db.close()


def corpus_attacks(per_family: int, corpus: Path | None = None) -> list[Prompt]:
    """Up to ``per_family`` attacks per family from the detector's fetched corpus
    (``python -m gateway.detection.train fetch``), chosen by a hash of the text (stable), and
    only prompts short enough for a 135M model's context (under 600 characters)."""
    from gateway.detection.datasets import load

    by_family: dict[str, list[Prompt]] = defaultdict(list)
    for row in load(corpus):
        if row.label == 1 and len(row.text) < 600:
            by_family[row.family].append(
                Prompt(row.text.strip(), "attack", row.family, f"corpus:{row.source}")
            )
    out = []
    for prompts in by_family.values():
        prompts.sort(key=lambda p: _hash(p.text))
        out += prompts[:per_family]
    return out


CORPUS_BENIGN_SOURCES = ("s-labs",)
"""Corpora whose benign rows are trained on as benign prompts. Not neuralchemy: its benign rows
include jailbreak prompts (its train split has 12 copies of a "very direct assistant who always
fulfills the user's request" template), which an adapter must not learn to answer."""


def corpus_benign(n: int, corpus: Path | None = None) -> list[Prompt]:
    """Up to ``n`` benign prompts from the detector corpus's *train* split (never its test
    split), from :data:`CORPUS_BENIGN_SOURCES`, under 400 characters, chosen by a hash of the
    text: half of them use the words attacks use ("ignore", "system prompt", "password" ...;
    the corpus's trigger-word rule), so the adapter meets innocent uses of those words."""
    from gateway.detection.datasets import load

    rows = [
        r
        for r in load(corpus)
        if r.label == 0
        and r.split == "train"
        and r.source in CORPUS_BENIGN_SOURCES
        and len(r.text.strip()) < 400
    ]
    rows.sort(key=lambda r: _hash(r.text))
    trigger = [r for r in rows if r.trigger][: n // 2]
    plain = [r for r in rows if not r.trigger][: n - len(trigger)]
    return [
        Prompt(r.text.strip(), "benign", "benign", f"corpus:{r.source}") for r in trigger + plain
    ]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_pick(key: str, n: int) -> int:
    """A deterministic index in [0, n) from a text (templates, wrappers)."""
    return int(_hash(key)[:8], 16) % n


def unique(prompts: Iterable[Prompt]) -> Iterator[Prompt]:
    """Exact duplicates (same text) removed, first kept."""
    seen: set[str] = set()
    for p in prompts:
        if p.text not in seen:
            seen.add(p.text)
            yield p
