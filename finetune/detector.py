"""Retrain one of the injection detector's heads (``lexical`` or ``semantic``,
:mod:`finetune.detector_heads`) with blocked traffic, and replace the head in use only when the
candidate does at least as well (``finetune detector train``).

1. Training rows: the detector corpus's train split (sampled for the semantic head, whole for
   the lexical one) plus the ``train``-split events (:func:`finetune.detector_train.event_rows`);
   ``test``-split events are held out.
2. The candidate head: the kind's own fit (:meth:`finetune.detector_heads.HeadKind.fit`).
3. Both heads on the same rows with the kind's whole-text verdict (:mod:`finetune.detector_gate`);
   the gate's thresholds are :class:`finetune.detector_gate.Thresholds`.
4. ``report.md`` and ``detector.json`` in the report folder; the candidate itself goes there as
   ``candidate.npz`` whatever the gate says, for inspection.
5. Gate passed and not a dry run: the candidate is written to ``out`` atomically, the old file
   kept as ``<out>.prev``. Gate failed: ``out`` is not touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from finetune import detector_heads, detector_report
from finetune.detector_gate import Check, Figures, Thresholds, decide, eval_rows, measure
from finetune.detector_train import TextEncoder, event_rows
from gateway.detection import datasets
from gateway.detection.datasets import Row


class RetrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    head: str = Field(detector_heads.DEFAULT, description="which head: lexical or semantic")
    events_db: str | None = Field(None, description="SQLite path or postgresql:// URL")
    corpus: Path | None = Field(None, description="corpus.jsonl; default: the cache's, fetched")
    per_group: int = Field(
        600, ge=1, description="training rows per (source, label); semantic head only"
    )
    eval_per_group: int = Field(120, ge=1, description="test rows per (source, label)")
    current: Path | None = Field(
        None,
        description="the head in use; default: out if it exists, else that kind's bundled head",
    )
    out: Path
    report_dir: Path
    cache: Path | None = Field(None, description="embedding cache; default: cache_dir()/emb.npz")
    dry_run: bool = False
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @field_validator("head")
    @classmethod
    def _known_head(cls, name: str) -> str:
        detector_heads.kind(name)
        return name

    def current_head(self) -> Path:
        if self.current is not None:
            return self.current
        return self.out if self.out.exists() else detector_heads.kind(self.head).bundled


@dataclass(frozen=True, slots=True)
class Outcome:
    current: Figures
    candidate: Figures
    checks: list[Check]
    training: dict[str, int]
    report: Path
    installed: bool
    prev: Path | None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def load_corpus(path: Path | None) -> list[Row]:
    """The labelled corpus; the default one is fetched first on a fresh machine (or after
    ``benign.yaml`` changed)."""
    return datasets.load(datasets.ensure() if path is None else path)


def retrain(cfg: RetrainConfig, encoder: TextEncoder | None = None) -> Outcome:
    """``encoder`` embeds for the semantic head (default MiniLM; the lexical head embeds
    nothing). Raises OSError (missing files), ValueError (unusable corpus) and ConfigError
    (event store) before anything is written."""
    from finetune.sources import event_attacks
    from gateway.detection.paths import cache_dir

    kind = detector_heads.kind(cfg.head)(encoder, cfg.cache or cache_dir() / "emb.npz")
    current_path = cfg.current_head()
    current = kind.load(current_path)
    corpus = load_corpus(cfg.corpus)
    prompts = event_attacks(cfg.events_db) if cfg.events_db else []
    events = event_rows(prompts, corpus)

    rows = kind.training_rows(corpus, events.train, cfg.per_group)
    evaluation = eval_rows(corpus, events.test, cfg.eval_per_group)
    candidate = kind.fit(rows, corpus)
    figures = (
        measure(lambda t: kind.flag(current, t), current.threshold, evaluation),
        measure(lambda t: kind.flag(candidate, t), candidate.threshold, evaluation),
    )
    checks = decide(*figures, cfg.thresholds)
    passed = all(c.passed for c in checks)

    training = {
        "corpus_train_rows": len(rows) - len(events.train),
        "corpus_train_attacks": sum(r.label for r in rows) - len(events.train),
        "events_trained_on": len(events.train),
        **kind.extra_training(rows),
        "events_held_out": len(events.test),
        "events_duplicates_skipped": events.duplicates,
        "events_already_in_corpus": events.in_corpus,
    }
    cfg.report_dir.mkdir(parents=True, exist_ok=True)
    kind.save(candidate, cfg.report_dir / "candidate.npz")
    installed = passed and not cfg.dry_run
    prev = (
        detector_report.install(lambda p: kind.save(candidate, p), kind.load, cfg.out)
        if installed
        else None
    )
    if installed:
        action = f"written to `{cfg.out}`" + (f" (previous: `{prev}`)" if prev else "")
    elif passed:
        action = f"dry run: `{cfg.out}` not written"
    else:
        action = f"`{cfg.out}` not touched"
    train = f"{cfg.per_group} per group" if kind.sampled else "the whole split"
    header = [
        f"Current head: `{current_path}`. Candidate: `{cfg.report_dir / 'candidate.npz'}`, "
        f"{action}.",
        f"Events: {cfg.events_db or 'none'}. Corpus train split: {train}; test split: "
        f"{cfg.eval_per_group} per group. "
        f"Run: {datetime.now(UTC).isoformat(timespec='seconds')}.",
    ]
    data: dict[str, object] = {
        "head": kind.name,
        "check": kind.check,
        "current": str(current_path),
        "out": str(cfg.out),
        "installed": installed,
        "dry_run": cfg.dry_run,
        "events_db": cfg.events_db,
        "per_group": cfg.per_group if kind.sampled else None,
        "eval_per_group": cfg.eval_per_group,
        "scoring": "whole-text",
        "training": training,
        "figures": {"current": figures[0].as_json(), "candidate": figures[1].as_json()},
        "gate": {
            "passed": passed,
            "thresholds": cfg.thresholds.model_dump(),
            "checks": {c.name: c.as_json() for c in checks},
        },
    }
    text = detector_report.markdown(*figures, checks, training, header, kind.name, kind.scoring)
    report = detector_report.write_report(cfg.report_dir, text, data)
    return Outcome(*figures, checks, training, report, installed, prev)
