"""``finetune dataset build``: prompts from the seeds, the event store and (optionally) the
detector corpora → mutations → near-duplicate removal → answers → a family split.

* attacks get a safe completion in the deployment's voice (:mod:`finetune.voice`);
* benign near-miss prompts get the BASE model's own answer through vLLM, so training keeps
  the base model's behaviour on them (answers the refusal classifier calls refusals are dropped:
  the adapter must not learn to refuse benign prompts);
* the split is by attack family: ``holdout`` families go to ``eval.jsonl`` only, so the
  evaluation measures attacks the adapter never saw. Benign near-miss prompts are split by a
  hash of their unmutated text (``benign_eval_fraction``), so a prompt's mutations stay in one
  split; benign twins of the seed attacks (``twins``) are split by the family they mirror, like
  the attacks, so the twins of held-out families are benign eval prompts; benign prompts from
  the detector corpus (``corpus_benign``) are trained on only, and so is the train split of the
  detector's curated benign traffic (``curated_benign``, the detector's own split: ``finetune
  eval`` asks its test split, so one set of curated rows stays unseen everywhere);
* with ``preferences`` (default) the training attacks get the base model's answer too, and the
  train split is also written as DPO preference pairs (:mod:`finetune.preferences`).

Output in ``out``: ``train.jsonl``, ``eval.jsonl`` (one ``{"messages": [...], "meta": {...}}``
per line), ``preferences.jsonl`` (train split), ``card.md`` and ``stats.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from finetune import sources
from finetune.card import render_card
from finetune.dedup import near_unique
from finetune.mutations import MUTATIONS, check, mutate
from finetune.preferences import Pair, pairs
from finetune.records import Example, Prompt
from finetune.refusal import is_refusal
from finetune.sources import DETECTOR_BENIGN as CURATED
from finetune.sources import stable_pick, unique
from finetune.vllm_client import VLLMClient
from finetune.voice import DEFAULT_VOICE, load_voice

Split = Literal["train", "eval"]
DEFAULT_HOLDOUT = ("privilege_escalation", "refusal_suppression")


class BuildConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: Path
    vllm_url: str = "http://127.0.0.1:8000"
    model: str = "smollm2-135m-instruct"
    seeds: Path = sources.SEED_ATTACKS
    near_miss: Path = sources.NEAR_MISS
    twins: Path | None = Field(
        default=sources.BENIGN_TWINS,
        description="benign twins of the seed attacks (split by family); None: none",
    )
    voice: Path = DEFAULT_VOICE
    events_db: str | None = Field(default=None, description="event store: SQLite path or URL")
    events_actions: list[str] = ["block"]
    events_since: datetime | None = None
    corpus_per_family: int = Field(
        default=0, ge=0, description="detector-corpus attacks per family"
    )
    corpus_benign: int = Field(
        default=0, ge=0, description="detector-corpus benign prompts (train split), train only"
    )
    corpus: Path | None = Field(
        default=None, description="the detector corpus file (default: the fetched one)"
    )
    curated_benign: bool = Field(
        default=True,
        description="train on the train split of the detector's curated benign traffic (small "
        "talk, instructions about language and format, support requests ...; unmutated, "
        "follow-ups excepted); `finetune eval` asks its test split",
    )
    holdout: list[str] = list(DEFAULT_HOLDOUT)
    attack_mutations: list[str] = sorted(MUTATIONS)
    benign_mutations: list[str] = ["padding", "instruction_in_data", "roleplay"]
    """Benign prompts wrapped like attacks are (padding, inside a document, in a role-play), so
    the adapter learns to judge the request, not to refuse the wrapper."""
    max_benign: int | None = Field(
        default=None, ge=1, description="cap near-miss prompts (before mutation), by a stable hash"
    )
    benign_eval_fraction: float = Field(default=0.25, ge=0, lt=1)
    dedup_threshold: float = Field(default=0.8, gt=0, le=1)
    answer_max_tokens: int = Field(default=128, gt=0)
    preferences: bool = Field(
        default=True,
        description="also write preferences.jsonl (DPO pairs; asks the base model for its "
        "answers to the training attacks)",
    )


def gather(cfg: BuildConfig) -> tuple[list[Prompt], list[Prompt]]:
    """(attacks, benign) before mutation, exact duplicates removed."""
    attacks = sources.seed_attacks(cfg.seeds)
    if cfg.events_db is not None:
        attacks += sources.event_attacks(
            cfg.events_db, actions=cfg.events_actions, since=cfg.events_since
        )
    if cfg.corpus_per_family:
        attacks += sources.corpus_attacks(cfg.corpus_per_family, cfg.corpus)
    benign = list(unique(sources.near_miss(cfg.near_miss)))
    if cfg.max_benign is not None:
        benign = sorted(benign, key=lambda p: stable_pick(p.text, 1 << 30))[: cfg.max_benign]
    if cfg.twins is not None:
        benign = list(unique(benign + sources.benign_twins(cfg.twins)))
    if cfg.corpus_benign:
        benign = list(unique(benign + sources.corpus_benign(cfg.corpus_benign, cfg.corpus)))
    if cfg.curated_benign:
        benign = list(unique(benign + curated_train()))
    return list(unique(attacks)), benign


def curated_train() -> list[Prompt]:
    """The train split of the detector's curated benign rows, without the follow-ups about a
    previous answer ("Make it shorter, please."): asked alone, the base model's answer to one
    is made up or says there was no answer, and neither is worth learning."""
    follow_ups = sources.follow_up_openers()
    return [p for p in sources.detector_benign("train") if p.text not in follow_ups]


def split_of(prompt: Prompt, cfg: BuildConfig) -> Split:
    if prompt.kind == "attack" or prompt.source == "twin":
        return "eval" if prompt.family in cfg.holdout else "train"
    if prompt.source.startswith("corpus:") or prompt.source == CURATED:
        return "train"  # curated: only its train split is gathered; `finetune eval` asks the rest
    buckets = 1000
    held_out = stable_pick(prompt.text, buckets) < cfg.benign_eval_fraction * buckets
    return "eval" if held_out else "train"


def build(cfg: BuildConfig, client: VLLMClient | None = None) -> dict[str, object]:
    """Build the dataset into ``cfg.out``; return the statistics written to ``stats.json``."""
    check(cfg.attack_mutations)
    check(cfg.benign_mutations)
    attacks, benign = gather(cfg)
    families = sorted({p.family for p in attacks})
    missing = sorted(set(cfg.holdout) - set(families))
    if missing:
        raise ValueError(f"holdout families {missing} have no attacks; families: {families}")
    if set(families) <= set(cfg.holdout):
        raise ValueError("every attack family is held out: nothing left to train on")
    voice = load_voice(cfg.voice)
    curated = [p for p in benign if p.source == CURATED]  # real traffic's form: not wrapped
    wrapped = mutate([p for p in benign if p.source != CURATED], cfg.benign_mutations)
    prompts = mutate(attacks, cfg.attack_mutations) + wrapped + curated
    splits = {p.origin or p.text: split_of(p, cfg) for p in attacks + benign}
    kept, near_dups = near_unique(prompts, threshold=cfg.dedup_threshold)

    client = client or VLLMClient(cfg.vllm_url)
    benign_kept = [p for p in kept if p.kind == "benign"]
    answers = client.chat(
        cfg.model, [p.text for p in benign_kept], max_tokens=cfg.answer_max_tokens
    )
    benign_answer = dict(zip((p.text for p in benign_kept), answers, strict=True))

    examples: list[Example] = []
    refused_benign = 0
    for p in kept:
        split = splits[p.origin or p.text]
        if p.kind == "attack":
            examples.append(Example(p, voice.refusal(p), split))
            continue
        answer = benign_answer[p.text].strip()
        if not answer or is_refusal(answer):
            refused_benign += 1
            continue
        examples.append(Example(p, answer, split))

    preference_pairs: list[Pair] | None = None
    skipped_attacks = 0
    if cfg.preferences:
        train = [ex for ex in examples if ex.split == "train"]
        attack_texts = [ex.prompt.text for ex in train if ex.prompt.kind == "attack"]
        base = client.chat(cfg.model, attack_texts, max_tokens=cfg.answer_max_tokens)
        preference_pairs, skipped_attacks = pairs(
            train, dict(zip(attack_texts, base, strict=True)), voice
        )

    cfg.out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "eval"):
        _write_jsonl(
            cfg.out / f"{split}.jsonl", (ex.to_json() for ex in examples if ex.split == split)
        )
    if preference_pairs is not None:
        _write_jsonl(cfg.out / "preferences.jsonl", (p.to_json() for p in preference_pairs))
    else:
        (cfg.out / "preferences.jsonl").unlink(missing_ok=True)  # not a stale one from before
    stats = _stats(cfg, examples, near_dups=near_dups, refused_benign=refused_benign)
    if preference_pairs is not None:
        kinds = Counter(p.example.prompt.kind for p in preference_pairs)
        stats["preference_pairs"] = {
            "attack": kinds["attack"],
            "benign": kinds["benign"],
            "attacks_skipped_base_refused": skipped_attacks,
        }
    (cfg.out / "stats.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")
    (cfg.out / "card.md").write_text(render_card(stats), encoding="utf-8")
    return stats


def _write_jsonl(path: Path, rows: Iterable[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _stats(
    cfg: BuildConfig, examples: list[Example], *, near_dups: int, refused_benign: int
) -> dict[str, object]:
    def count(key: str) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = {"train": Counter(), "eval": Counter()}
        for ex in examples:
            meta = ex.to_json()["meta"]
            assert isinstance(meta, dict)
            value = str(meta[key])
            if key == "family" and ex.prompt.source == "twin":
                value = f"benign twin: {value}"
            out[ex.split][value] += 1
        return {s: dict(sorted(c.items())) for s, c in out.items()}

    return {
        "config": json.loads(cfg.model_dump_json()),
        "examples": count("split"),
        "kind": count("kind"),
        "family": count("family"),
        "source": count("source"),
        "mutation": count("mutation"),
        "near_duplicates_removed": near_dups,
        "benign_answers_dropped_as_refusals": refused_benign,
    }
