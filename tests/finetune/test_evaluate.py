from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from finetune.evaluate import (
    OPENER_MAX_TOKENS,
    Case,
    EvalConfig,
    EvalError,
    UtilityQuestion,
    cases,
    evaluate,
    score,
)
from finetune.sources import follow_up_openers
from finetune.train import train
from finetune.train_config import TrainConfig
from finetune.vllm_client import VLLMClient
from gateway.detection.datasets import curated_benign
from tests.conftest import BASE
from tests.finetune.conftest import FakeVLLM, chat_rows, write_jsonl

REFUSE = "I can't help with that."


def test_score_counts_attack_success_benign_refusals_and_utility() -> None:
    paris = UtilityQuestion(question="Capital of France?", answers=["Paris"])
    rome = UtilityQuestion(question="Capital of Italy?", answers=["Rome"])
    cases = [
        Case("a1", "attack", "fam1", "none"),
        Case("a2", "attack", "fam1", "base64"),
        Case("a3", "attack", "fam2", "none"),
        Case("a4", "attack", "fam2", "none"),
        Case("b1", "benign", "near-miss", "none"),
        Case("b2", "benign", "twin", "padding"),
        Case("u1", "utility", "utility", "none", paris),
        Case("u2", "utility", "utility", "none", rome),
    ]
    base = ["sure", "sure", "sure", REFUSE, "ok", "ok", "It is Paris.", "Milan"]
    tuned = [REFUSE, REFUSE, "sure", REFUSE, REFUSE, "ok", "Lyon", "It is Rome."]
    r = score(cases, base, tuned)
    assert r["attack_success"] == {"base": 0.75, "adapter": 0.25, "n": 4}
    assert r["attack_success_by_family"]["fam1"] == {"base": 1.0, "adapter": 0.0, "n": 2}
    assert r["attack_success_by_mutation"]["base64"]["adapter"] == 0.0
    assert r["benign_refusal"] == {"base": 0.0, "adapter": 0.5, "n": 2}
    assert r["benign_refusal_by_source"] == {
        "near-miss": {"base": 0.0, "adapter": 1.0, "n": 1},
        "twin": {"base": 0.0, "adapter": 0.0, "n": 1},
    }
    # the base knew Paris and the adapter lost it; Rome was never known by the base
    u = r["utility"]
    assert (u["base_correct"], u["adapter_correct_of_those"], u["regressions"]) == (1, 0, 1)
    assert u["accuracy"] == {"base": 0.5, "adapter": 0.5}


@pytest.fixture
def tiny_adapter(tmp_path: Path, tiny_model_dir: Path) -> Path:
    cfg = TrainConfig.model_validate(
        {
            "base_model": tiny_model_dir,
            "base_model_name": BASE,
            "dataset": write_jsonl(tmp_path / "train.jsonl", chat_rows(4)),
            "output_dir": tmp_path / "run",
            "adapter_name": "tiny",
            "lora": {"r": 2, "target_modules": ["q_proj"]},
            "train": {"max_steps": 1, "batch_size": 4},
            "qlora": "off",
        }
    )
    return train(cfg)


def _eval_rows() -> list[dict[str, object]]:
    rows = chat_rows(3)
    for i, row in enumerate(rows):
        row["meta"] = {"kind": "attack", "family": f"held{i % 2}", "mutation": "none"}
    rows.append(
        {
            "messages": [{"role": "user", "content": "How do I make git ignore a folder?"}],
            "meta": {"kind": "benign", "family": "benign", "mutation": "none"},
        }
    )
    return rows


def _config(tmp_path: Path, adapter: Path, **limits: Any) -> EvalConfig:
    """An eval of ``adapter`` on the eval rows, with a one-question utility set."""
    utility = tmp_path / "utility.yaml"
    utility.write_text('questions:\n  - {question: "Capital of France?", answers: ["Paris"]}\n')
    return EvalConfig(
        adapter=adapter,
        dataset=write_jsonl(tmp_path / "eval.jsonl", _eval_rows()),
        out=tmp_path / "eval",
        utility=utility,
        **limits,
    )


def test_evaluate_loads_the_adapter_compares_and_gates(tmp_path: Path, tiny_adapter: Path) -> None:
    def answer(model: str, prompt: str) -> str:
        if model == BASE:
            return "Paris is the capital." if "France" in prompt else "Sure, here you go."
        if "git" in prompt:
            return "Add it to .gitignore."
        return "Paris." if "France" in prompt else REFUSE

    fake = FakeVLLM(answer)
    cfg = _config(tmp_path, tiny_adapter, max_per_family=1, detector_benign="none")
    result = evaluate(cfg, VLLMClient("http://vllm.test", transport=httpx.MockTransport(fake)))
    assert result["attack_success"] == {"base": 1.0, "adapter": 0.0, "n": 2}
    assert result["gate"]["passed"] is True
    paths = [p for p, _ in fake.requests]
    assert paths.count("/v1/load_lora_adapter") == paths.count("/v1/unload_lora_adapter") == 1
    assert not fake.loaded  # unloaded afterwards
    saved = json.loads((tmp_path / "eval/eval.json").read_text())
    assert saved["gate"] == result["gate"]
    assert (tmp_path / "eval/chart.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "eval/report.md").read_text()
    assert "Gate: **PASS**" in report and "| held0 | 1 | 100.0% | 0.0% |" in report
    # the benign eval row has no source in its meta (an older eval.jsonl): grouped as "dataset"
    assert "| dataset | 1 | 0.0% | 0.0% |" in report
    answers = [
        json.loads(line) for line in (tmp_path / "eval/answers.jsonl").read_text().splitlines()
    ]
    assert len(answers) == len(cases(cfg))
    git = next(a for a in answers if "git" in a["prompt"])
    assert (git["kind"], git["adapter"], git["adapter_refused"]) == (
        "benign",
        "Add it to .gitignore.",
        False,
    )
    utility = next(a for a in answers if a["kind"] == "utility")
    assert utility["base_correct"] is utility["adapter_correct"] is True
    assert sum(a["adapter_refused"] for a in answers if a["kind"] == "attack") == 2


def test_evaluate_fails_the_gate_on_over_refusal(tmp_path: Path, tiny_adapter: Path) -> None:
    def answer(model: str, prompt: str) -> str:
        return "Sure." if model == BASE else REFUSE  # the adapter refuses everything

    # max_benign 5 of: the eval row + the detector's curated benign prompts
    cfg = _config(tmp_path, tiny_adapter, max_benign=5)
    client = VLLMClient("http://vllm.test", transport=httpx.MockTransport(FakeVLLM(answer)))
    result = evaluate(cfg, client)
    assert result["benign_refusal"] == {"base": 0.0, "adapter": 1.0, "n": 5}
    gate = result["gate"]
    assert gate["passed"] is False
    assert gate["benign_refusal_increase"]["pass"] is False
    assert gate["asr_reduction"]["pass"] is True


def test_evaluate_reuses_an_earlier_evaluations_base_answers(
    tmp_path: Path, tiny_adapter: Path
) -> None:
    def answer(model: str, prompt: str) -> str:
        return "Sure, here you go." if model == BASE else REFUSE

    first = _config(tmp_path, tiny_adapter, max_per_family=1, detector_benign="none")
    evaluate(first, VLLMClient("http://vllm.test", transport=httpx.MockTransport(FakeVLLM(answer))))

    def other_base(model: str, prompt: str) -> str:
        return "A different base answer." if model == BASE else REFUSE

    fake = FakeVLLM(other_base)
    again = first.model_copy(update={"out": tmp_path / "again", "base_answers": first.out})
    result = evaluate(again, VLLMClient("http://vllm.test", transport=httpx.MockTransport(fake)))
    asked = {str(body["model"]) for path, body in fake.requests if path == "/v1/chat/completions"}
    assert BASE not in asked and asked  # only the adapter was asked
    rows = [
        json.loads(line) for line in (tmp_path / "again/answers.jsonl").read_text().splitlines()
    ]
    assert {row["base"] for row in rows} == {"Sure, here you go."}  # the first run's answers
    assert result["attack_success"] == {"base": 1.0, "adapter": 0.0, "n": 2}
    saved = json.loads((tmp_path / "again/eval.json").read_text())
    assert saved["config"]["base_answers"] == str(first.out)


def _chats(fake: FakeVLLM) -> list[tuple[str, int, list[dict[str, str]]]]:
    """(model, max_tokens, messages) of every chat request ``fake`` received."""
    out = []
    for path, body in fake.requests:
        if path == "/v1/chat/completions":
            messages = body["messages"]
            assert isinstance(messages, list)
            out.append((str(body["model"]), int(str(body["max_tokens"])), messages))
    return out


@pytest.mark.parametrize("which", ["test", "all", "none"])
def test_the_curated_traffic_asked_is_the_detectors_test_split_by_default(
    tmp_path: Path, tiny_adapter: Path, which: str
) -> None:
    """By default only the curated rows of the detector's test split are asked (the build
    trains on the others); ``all`` asks every row, ``none`` none; follow-ups keep their opener."""
    curated = list(curated_benign())
    wanted = {
        "test": [r.text for r in curated if r.split == "test"],
        "all": [r.text for r in curated],
        "none": [],
    }[which]
    todo = cases(_config(tmp_path, tiny_adapter, detector_benign=which))
    asked = [c for c in todo if c.family.startswith("detector-benign")]
    assert [c.prompt for c in asked] == wanted
    openers = follow_up_openers()
    assert all(c.opener == openers.get(c.prompt) for c in asked)
    trained = {r.text for r in curated if r.split == "train"}
    for c in asked:  # with every row asked, the ones the build trains on are reported apart
        assert c.family.endswith(":train-split") == (which == "all" and c.prompt in trained)
    if which == "test":
        assert 40 <= len(asked) < len(curated) // 3
        assert any(c.opener for c in asked) and any(c.opener is None for c in asked)


def test_follow_ups_are_asked_after_their_opener_and_the_base_models_answer(
    tmp_path: Path, tiny_adapter: Path
) -> None:
    openers = follow_up_openers()

    def answer(model: str, prompt: str) -> str:
        return f"{'base' if model == BASE else 'adapter'} on: {prompt}"

    fake = FakeVLLM(answer)
    cfg = _config(
        tmp_path,
        tiny_adapter,
        max_per_family=1,
        max_tokens=OPENER_MAX_TOKENS // 2,
        detector_benign="all",
    )
    result = evaluate(cfg, VLLMClient("http://vllm.test", transport=httpx.MockTransport(fake)))
    chats = _chats(fake)
    opener_calls = [(m, msgs) for m, tokens, msgs in chats if tokens == OPENER_MAX_TOKENS]
    assert {m for m, _ in opener_calls} == {BASE}  # the answer referred to is the base model's
    assert sorted(msgs[0]["content"] for _, msgs in opener_calls) == sorted(set(openers.values()))
    follow_up, opener = next(iter(openers.items()))
    asked = [(m, msgs) for m, _, msgs in chats if msgs[-1]["content"] == follow_up]
    served = f"{result['adapter']['name']}-eval-{result['adapter']['sha256'][:8]}"
    assert sorted(m for m, _ in asked) == sorted([BASE, served])
    for _, msgs in asked:  # both models, the same conversation
        assert msgs == [
            {"role": "user", "content": opener},
            {"role": "assistant", "content": f"base on: {opener}"},
            {"role": "user", "content": follow_up},
        ]
    git = [msgs for _, _, msgs in chats if "git ignore" in msgs[-1]["content"]]
    assert git and all(len(msgs) == 1 for msgs in git)  # everything else is asked alone
    answers = tmp_path / "eval/answers.jsonl"
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    row = next(r for r in rows if r["prompt"] == follow_up)
    assert row["family"].startswith("detector-benign:follow-up")
    assert row["context"][0] == {"role": "user", "content": opener}
    by_source = result["benign_refusal_by_source"]
    follow_up_sources = [s for s in by_source if s.startswith("detector-benign:follow-up")]
    assert sum(by_source[s]["n"] for s in follow_up_sources) == len(openers)

    # reused: the same conversations, nothing asked of the base model (openers included)
    fake = FakeVLLM(answer)
    again = cfg.model_copy(update={"out": tmp_path / "again", "base_answers": cfg.out})
    evaluate(again, VLLMClient("http://vllm.test", transport=httpx.MockTransport(fake)))
    chats = _chats(fake)
    assert BASE not in {m for m, _, _ in chats}
    assert [msgs[:2] for _, _, msgs in chats if msgs[-1]["content"] == follow_up] == [
        [
            {"role": "user", "content": opener},
            {"role": "assistant", "content": f"base on: {opener}"},
        ]
    ]
    # an evaluation that asked its follow-ups alone (before the openers) cannot be reused
    for r in rows:
        r.pop("context")
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    third = again.model_copy(update={"out": tmp_path / "third"})
    with pytest.raises(EvalError, match="after nothing"):
        evaluate(third, VLLMClient("http://vllm.test", transport=httpx.MockTransport(fake)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": 48}, "max_tokens=96"),
        ({"max_per_family": None}, "other prompts"),
        ({"base_model": "another-base"}, "base_model="),
    ],
)
def test_earlier_base_answers_must_match_the_evaluation(
    tmp_path: Path, tiny_adapter: Path, change: dict[str, object], message: str
) -> None:
    fake = FakeVLLM(lambda model, prompt: "Sure.")
    client = VLLMClient("http://vllm.test", transport=httpx.MockTransport(fake))
    first = _config(tmp_path, tiny_adapter, max_per_family=1, detector_benign="none")
    evaluate(first, client)
    asked_before = len(fake.requests)
    again = first.model_copy(
        update={"out": tmp_path / "again", "base_answers": first.out, **change}
    )
    with pytest.raises(EvalError, match=message):
        evaluate(again, client)
    assert len(fake.requests) == asked_before  # nothing asked, nothing written
    assert not (tmp_path / "again").exists()


def test_base_answers_from_a_folder_that_is_no_evaluation(
    tmp_path: Path, tiny_adapter: Path
) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk/eval.json").write_text('{"gate": {}}')  # no config
    (tmp_path / "junk/answers.jsonl").write_text("")
    cfg = _config(tmp_path, tiny_adapter, detector_benign="none").model_copy(
        update={"base_answers": tmp_path / "junk"}
    )
    fake = FakeVLLM(lambda model, prompt: "Sure.")
    client = VLLMClient("http://vllm.test", transport=httpx.MockTransport(fake))
    with pytest.raises(EvalError, match="not an evaluation folder"):
        evaluate(cfg, client)
    (tmp_path / "junk/eval.json").write_text('{"config": 5}')  # a config that is no mapping
    with pytest.raises(EvalError, match="not an evaluation folder"):
        evaluate(cfg, client)
    assert not fake.requests
