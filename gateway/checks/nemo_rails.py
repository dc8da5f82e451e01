"""``nemo_rails``: NeMo Guardrails topic rails, on embeddings only.

The rule names a NeMo config folder (``config.yml`` + Colang flows whose ``define user``
blocks list example utterances of each intent, e.g. "ask about politics"). Each scanned text is
classified by NeMo's own ``generate_user_intent`` action on its ``embeddings_only`` branch with
the gateway's local MiniLM (:mod:`gateway.nemo_engine`): no LLM, no network. A text whose
intent is one of ``intents`` fires, with the intent, NeMo's similarity score and the nearest
example; anything else (NeMo's fallback intent, or an allowed intent) passes unchanged.

Names are checked: every entry of ``intents`` must be a ``define user`` intent of the folder,
and the folder must load in NeMo with the model and its intent index, or the policy fails to
load (listing what exists): the model loads when the policy does (seconds on CPU), never in a
request. A classification that fails at call time raises, which the pipeline turns into a
block (fail closed).
No LLM is called unless the rule asks for one with ``llm``: then a text similar to no example
goes to NeMo's LLM branch, answered by the served model through vLLM (``llm.model``, at
``llm.base_url`` or else the gateway's first upstream), and the intent it names counts like one
found by embeddings (the finding says which). Give such a rule a ``timeout_ms`` that covers a
generation on your hardware.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from gateway.checks import register
from gateway.errors import ConfigError
from gateway.nemo_engine import NemoEngine
from gateway.nemo_llm import ServedModelLLM
from gateway.openai_api import Segment
from gateway.pipeline import Action, CheckContext, Finding, Verdict
from gateway.settings import load_settings


class ServedLLM(BaseModel):
    """The served model NeMo may ask when no example is similar enough."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str = Field(description="a model vLLM serves, e.g. smollm2-135m-instruct")
    base_url: AnyHttpUrl | None = Field(
        None, description="vLLM's address; default: the gateway's first upstream"
    )
    timeout_s: float = Field(30.0, gt=0, le=600)

    def build(self) -> ServedModelLLM:
        url = str(self.base_url) if self.base_url else load_settings().upstreams()[0]
        return ServedModelLLM(url, self.model, timeout_s=self.timeout_s)


@register("nemo_rails")
class NemoRails:
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        config: Path = Field(
            description="NeMo config folder (config.yml + .co files), e.g. policies/nemo/topics; "
            "relative paths are read from the gateway's working directory"
        )
        intents: list[str] | None = Field(
            None,
            min_length=1,
            description="the forbidden user intents; default: every 'define user' intent "
            "of the folder except its fallback intent",
        )
        roles: list[str] = Field(
            default_factory=lambda: ["user", "prompt"], description="which roles are classified"
        )
        action: Action = Action.BLOCK
        llm: ServedLLM | None = Field(
            None, description="ask the served model when no example is similar (default: never)"
        )

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = NemoEngine(
            settings.config, llm=settings.llm.build() if settings.llm else None
        )
        known = self.engine.intents
        if settings.intents is None:
            self.intents = tuple(i for i in known if i != self.engine.fallback)
        else:
            unknown = [i for i in settings.intents if i not in known]
            if unknown:
                raise ConfigError(
                    f"unknown intent(s) {', '.join(map(repr, unknown))} in {settings.config}; "
                    f"known intents: {', '.join(known)}"
                )
            self.intents = tuple(settings.intents)
        self._roles = frozenset(settings.roles)

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        findings: list[Finding] = []
        for i, seg in enumerate(segments):
            if seg.role not in self._roles or not seg.text.strip():
                continue
            match = await self.engine.match(seg.text, self.intents)
            if match is None:
                continue
            how = "named by the served model" if match.by_llm else "similarity"
            reason = f"forbidden topic: user intent '{match.intent}'"
            findings.append(
                Finding(
                    "nemo_rails",
                    f"{reason} ({how} {match.similarity:.2f})",
                    family="off_topic",
                    score=match.similarity,
                    segment=i,
                    evidence=f"{match.intent}: nearest example {match.example!r}",
                )
            )
        if not findings:
            return Verdict.allow()
        return Verdict(self.settings.action, tuple(findings))
