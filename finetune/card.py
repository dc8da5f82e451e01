"""The dataset card (Markdown) written next to the JSONL files: counts, sources, mutation mix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _table(title: str, counts: object) -> list[str]:
    assert isinstance(counts, Mapping)
    train, eval_ = counts.get("train", {}), counts.get("eval", {})
    keys = sorted(set(train) | set(eval_))
    lines = [f"### {title}", "", f"| {title.lower()} | train | eval |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {train.get(k, 0)} | {eval_.get(k, 0)} |" for k in keys]
    lines.append(f"| **total** | {sum(train.values())} | {sum(eval_.values())} |")
    return [*lines, ""]


def render_card(stats: Mapping[str, object]) -> str:
    cfg = stats["config"]
    assert isinstance(cfg, Mapping)
    lines = [
        "# Dataset card: adversarial-robustness chat data",
        "",
        "Built by `finetune dataset build`. Each line of `train.jsonl` / `eval.jsonl` is",
        '`{"messages": [user, assistant], "meta": {kind, family, source, mutation, split}}`.',
        "",
        "- **attacks** → a refusal in the deployment's voice "
        f"(`{cfg['voice']}`) that names what the assistant still helps with;",
        f"- **benign {_benign_sources(cfg)}** → the base model's "
        f"own answer (`{cfg['model']}` at "
        f"`{cfg['vllm_url']}`, greedy, ≤ {cfg['answer_max_tokens']} tokens);",
        f"- **held-out families** (eval only): {', '.join(cfg['holdout'])};",
        f"- attack mutations: {', '.join(cfg['attack_mutations']) or 'none'}; "
        f"benign mutations: {', '.join(cfg['benign_mutations']) or 'none'};",
        f"- near-duplicates removed (MinHash LSH, threshold {cfg['dedup_threshold']}): "
        f"{stats['near_duplicates_removed']};",
        "- benign prompts dropped because the base model's answer was a refusal: "
        f"{stats['benign_answers_dropped_as_refusals']}.",
    ]
    prefs = stats.get("preference_pairs")
    if isinstance(prefs, Mapping):
        lines.append(
            f"- **preference pairs** (`preferences.jsonl`, train split, for `method: dpo`): "
            f"{prefs['attack']} attacks (rejected: the base model's answer; "
            f"{prefs['attacks_skipped_base_refused']} skipped, the base model refused them "
            f"already) and {prefs['benign']} benign prompts (rejected: the voice's refusal)."
        )
    lines += [
        "",
        "Event-store prompts are masked as stored (`<EMAIL>`, `<SECRET>` ...).",
        "A blocked request is not always an attack: check the `events` rows first.",
        "",
    ]
    for title in ("Kind", "Source", "Family", "Mutation"):
        lines += _table(title, stats[title.lower()])
    return "\n".join(lines)


def _benign_sources(cfg: Mapping[str, Any]) -> str:
    names = ["near-misses"]
    if cfg.get("twins"):
        names.append("twins")
    if cfg.get("curated_benign"):
        names.append("curated traffic (the detector's train split, unwrapped, train only)")
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
