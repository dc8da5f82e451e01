"""Safe completions in the deployment's voice: a refusal that says why and names what the
assistant will still help with. Template-based and configured in YAML (``data/voice.yaml``),
so every deployment can say no in its own words."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from finetune.records import Prompt
from finetune.sources import DATA_DIR, stable_pick

DEFAULT_VOICE = DATA_DIR / "voice.yaml"


class Voice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    assistant: str = Field(min_length=1)
    helps: list[str] = Field(min_length=1)
    templates: list[str] = Field(min_length=1)
    default_reason: str = Field(min_length=1)
    reasons: dict[str, str] = {}

    def refusal(self, prompt: Prompt) -> str:
        """The safe completion for an attack; the same prompt always gets the same words."""
        template = self.templates[stable_pick(prompt.text, len(self.templates))]
        helps = _join(self.helps)
        reason = self.reasons.get(prompt.family, self.default_reason)
        return template.format(assistant=self.assistant, reason=reason, helps=helps)


def load_voice(path: Path = DEFAULT_VOICE) -> Voice:
    return Voice.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]
