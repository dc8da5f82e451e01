"""The records the dataset stages pass along: a prompt with its origin, and a chat example."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["attack", "benign"]


@dataclass(frozen=True, slots=True)
class Prompt:
    """One user prompt before it gets its answer."""

    text: str
    kind: Kind
    family: str
    """The attack family (split key); ``benign`` for benign prompts, except benign twins, which
    carry the family whose seeds they mirror."""
    source: str
    """``seed``, ``events``, ``corpus:<name>``, ``near-miss``, ``twin`` or ``detector-benign``."""
    mutation: str = "none"
    origin: str = ""
    """The unmutated text this one was made from (empty for originals)."""

    def mutated(self, text: str, mutation: str) -> Prompt:
        return replace(self, text=text, mutation=mutation, origin=self.origin or self.text)


@dataclass(frozen=True, slots=True)
class Example:
    """A prompt with its assistant answer, and the split it belongs to."""

    prompt: Prompt
    answer: str
    split: Literal["train", "eval"]

    def to_json(self) -> dict[str, object]:
        """One JSONL line: ``messages`` (what the chat template reads) and ``meta``."""
        p = self.prompt
        return {
            "messages": [
                {"role": "user", "content": p.text},
                {"role": "assistant", "content": self.answer},
            ],
            "meta": {
                "kind": p.kind,
                "family": p.family,
                "source": p.source,
                "mutation": p.mutation,
                "split": self.split,
            },
        }
