"""Preference pairs for DPO (``preferences.jsonl``): one prompt, the answer the adapter should
give and the one it should not.

* attack → chosen: the refusal in the deployment's voice (the SFT target); rejected: the base
  model's own answer, i.e. what the adapter must stop saying. An attack the base model already
  refuses gives no pair (there is nothing to push down);
* benign → chosen: the base model's answer (the SFT target); rejected: the refusal the voice
  would give it. Supervised training only pushes refusals *up* on attacks; this pushes them
  *down* on benign prompts that look like attacks (near-misses, twins), which is where the
  supervised adapters over-refuse.

Rows are TRL's conversational preference format, ``{"prompt": [user], "chosen": [assistant],
"rejected": [assistant], "meta": {...}}``; the chat template is applied at training time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from finetune.records import Example
from finetune.refusal import is_refusal
from finetune.voice import Voice


@dataclass(frozen=True, slots=True)
class Pair:
    example: Example
    """The prompt and its chosen answer (the supervised example)."""
    rejected: str

    def to_json(self) -> dict[str, object]:
        row = self.example.to_json()
        messages = row["messages"]
        assert isinstance(messages, list)
        user, chosen = messages
        rejected = {"role": "assistant", "content": self.rejected}
        return {"prompt": [user], "chosen": [chosen], "rejected": [rejected], "meta": row["meta"]}


def pairs(
    examples: Iterable[Example], base_answers: Mapping[str, str], voice: Voice
) -> tuple[list[Pair], int]:
    """(pairs, attacks skipped because the base model refused them already).

    ``base_answers`` maps an attack prompt's text to the base model's answer; every attack in
    ``examples`` must have one."""
    out: list[Pair] = []
    skipped = 0
    for ex in examples:
        if ex.prompt.kind == "benign":
            out.append(Pair(ex, voice.refusal(ex.prompt)))
            continue
        answer = base_answers[ex.prompt.text].strip()
        if not answer or is_refusal(answer):
            skipped += 1
            continue
        out.append(Pair(ex, answer))
    return out, skipped
