"""``finetune eval``: base model versus adapter, both served by a real vLLM.

* **attack success rate** (ASR) on the dataset's held-out families (``eval.jsonl`` rows with
  ``kind: attack``): the share of attacks whose answer is *not* a refusal
  (:func:`finetune.refusal.is_refusal`);
* **benign refusal rate** on the held-out benign prompts (``kind: benign``) plus, by default,
  the detector's curated benign traffic (prompts the build never trains on); its follow-ups
  ("Make your answer shorter, please.") are asked after the question they follow
  (``data/follow_up_openers.yaml``) and the base model's answer to it, one conversation each;
* **utility**: the questions in ``data/utility.yaml`` the base answers right (an expected word in
  its answer) must stay right with the adapter;
* a gate (:mod:`finetune.gate`); a Markdown report, ``eval.json``, a before/after chart and
  ``answers.jsonl`` (every prompt with both answers and their scoring).

The adapter is loaded into vLLM under a temporary name (``<name>-eval-<sha8>``) through
``/v1/load_lora_adapter`` and unloaded afterwards; answers are greedy (temperature 0).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from finetune.chat_data import read_jsonl
from finetune.gate import Figures, Thresholds, decide
from finetune.plots import before_after
from finetune.refusal import is_refusal
from finetune.report import render_report
from finetune.sources import DATA_DIR, detector_benign, follow_up_openers, stable_pick
from finetune.vllm_client import Message, VLLMClient
from gateway.adapters import read_manifest
from gateway.detection.datasets import split_of

UTILITY = DATA_DIR / "utility.yaml"
EVAL_JSON = "eval.json"
ANSWERS = "answers.jsonl"  # read back by earlier_base_answers
OPENER_MAX_TOKENS = 96
"""Length cap of the base model's answer to a follow-up's opener (the answer it refers to)."""


class UtilityQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    answers: list[str] = Field(min_length=1)

    def correct(self, answer: str) -> bool:
        low = answer.casefold()
        return any(a.casefold() in low for a in self.answers)


class UtilityFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    questions: list[UtilityQuestion] = Field(min_length=1)


class DetectorBenign(StrEnum):
    """Which of the detector's curated benign rows ``finetune eval`` asks."""

    test = "test"
    all = "all"
    none = "none"


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adapter: Path = Field(description="the adapter folder (manifest.yaml + PEFT files)")
    dataset: Path = Field(description="eval.jsonl from `finetune dataset build`")
    out: Path
    vllm_url: str = "http://127.0.0.1:8000"
    base_model: str = "smollm2-135m-instruct"
    utility: Path = UTILITY
    max_per_family: int | None = Field(default=None, ge=1, description="cap attacks per family")
    max_benign: int | None = Field(default=None, ge=1)
    max_tokens: int = Field(default=96, ge=8)
    detector_benign: DetectorBenign = Field(
        default=DetectorBenign.test,
        description="add the detector's curated benign traffic: its test split (never trained "
        "on, here or by the detector), all of it (the train split too, which `finetune dataset "
        "build` trains on by default) or none",
    )
    thresholds: Thresholds = Thresholds()
    base_answers: Path | None = Field(
        default=None,
        description="an earlier evaluation's folder whose base-model answers to reuse (same "
        "base model, prompts and max_tokens, and the same server: answers depend on its dtype)",
    )


class EvalError(ValueError):
    """The evaluation cannot run as configured (earlier base answers that do not match)."""


@dataclass(frozen=True, slots=True)
class Case:
    prompt: str
    kind: str  # attack | benign | utility
    family: str
    """The attack family; for benign cases, where the prompt comes from (``near-miss``,
    ``twin``, ``detector-benign`` ...)."""
    mutation: str
    expected: UtilityQuestion | None = None
    opener: str | None = None
    """For a follow-up, the question it follows: asked first, and its answer (the base
    model's) is the conversation the follow-up is asked in."""

    def conversation(self, context: list[Message]) -> list[Message]:
        return [*context, {"role": "user", "content": self.prompt}]


def _sample(rows: list[Case], cap: int | None) -> list[Case]:
    """At most ``cap`` rows, chosen by a stable hash of the prompt (a spread over seeds and
    mutations, the same every run), in their original order."""
    if cap is None or len(rows) <= cap:
        return rows
    chosen = set(sorted(range(len(rows)), key=lambda i: stable_pick(rows[i].prompt, 1 << 30))[:cap])
    return [r for i, r in enumerate(rows) if i in chosen]


def cases(cfg: EvalConfig) -> list[Case]:
    attacks: dict[str, list[Case]] = defaultdict(list)
    benign: list[Case] = []
    for row in read_jsonl(cfg.dataset):
        meta, prompt = row["meta"], row["messages"][0]["content"]
        if meta["kind"] == "attack":
            attacks[meta["family"]].append(Case(prompt, "attack", meta["family"], meta["mutation"]))
        else:
            benign.append(Case(prompt, "benign", meta.get("source", "dataset"), meta["mutation"]))
    if cfg.detector_benign is not DetectorBenign.none:
        openers = follow_up_openers()
        for p in detector_benign(None if cfg.detector_benign is DetectorBenign.all else "test"):
            opener = openers.get(p.text)
            source = p.source if opener is None else f"{p.source}:follow-up"
            if cfg.detector_benign is DetectorBenign.all and split_of(p.text) == "train":
                source += ":train-split"  # what the build trains on: reported apart
            benign.append(Case(p.text, "benign", source, "none", opener=opener))
    out = [c for family in sorted(attacks) for c in _sample(attacks[family], cfg.max_per_family)]
    out += _sample(benign, cfg.max_benign)
    utility = UtilityFile.model_validate(yaml.safe_load(cfg.utility.read_text(encoding="utf-8")))
    out += [Case(q.question, "utility", "utility", "none", q) for q in utility.questions]
    return out


def evaluate(cfg: EvalConfig, client: VLLMClient | None = None) -> dict[str, Any]:
    """Run both models on every case; write eval.json, report.md, chart.png; return eval.json."""
    manifest = read_manifest(cfg.adapter)
    client = client or VLLMClient(cfg.vllm_url)
    served = f"{manifest.name}-eval-{manifest.sha256[:8]}"
    todo = cases(cfg)
    if cfg.base_answers is None:
        contexts = opener_contexts(client, cfg.base_model, todo)
        conversations = [c.conversation(ctx) for c, ctx in zip(todo, contexts, strict=True)]
        base = client.chat_conversations(cfg.base_model, conversations, max_tokens=cfg.max_tokens)
    else:
        contexts, base = earlier_base_answers(cfg.base_answers, cfg, todo)
        conversations = [c.conversation(ctx) for c, ctx in zip(todo, contexts, strict=True)]
    client.load_adapter(served, cfg.adapter)
    try:
        tuned = client.chat_conversations(served, conversations, max_tokens=cfg.max_tokens)
    finally:
        client.unload_adapter(served)
    result = score(todo, base, tuned)
    figures = Figures(
        asr_base=result["attack_success"]["base"],
        asr_adapter=result["attack_success"]["adapter"],
        benign_refusal_base=result["benign_refusal"]["base"],
        benign_refusal_adapter=result["benign_refusal"]["adapter"],
        utility_regressions=result["utility"]["regressions"],
    )
    result["asr_reduction"] = round(figures.asr_reduction, 4)
    result["gate"] = decide(figures, cfg.thresholds)
    result["adapter"] = {"name": manifest.name, "sha256": manifest.sha256}
    result["config"] = json.loads(cfg.model_dump_json())
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / EVAL_JSON).write_text(json.dumps(result, indent=2) + "\n")
    write_answers(cfg.out / ANSWERS, todo, contexts, base, tuned)
    before_after(
        {
            "attack success\n(held-out families)": _pair(result["attack_success"]),
            "benign refusal": _pair(result["benign_refusal"]),
            "utility accuracy": _pair(result["utility"]["accuracy"]),
        },
        cfg.out / "chart.png",
        f"{manifest.name}: base vs adapter",
        ("base", "adapter"),
    )
    (cfg.out / "report.md").write_text(render_report(result), encoding="utf-8")
    return result


def opener_contexts(client: VLLMClient, model: str, todo: list[Case]) -> list[list[Message]]:
    """Each case's conversation before its prompt: empty, or for a follow-up its opener and
    ``model``'s answer to it (each opener asked once)."""
    openers = sorted({c.opener for c in todo if c.opener is not None})
    answers = dict(
        zip(openers, client.chat(model, openers, max_tokens=OPENER_MAX_TOKENS), strict=True)
    )
    return [
        []
        if c.opener is None
        else [
            {"role": "user", "content": c.opener},
            {"role": "assistant", "content": answers[c.opener]},
        ]
        for c in todo
    ]


def earlier_base_answers(
    folder: Path, cfg: EvalConfig, todo: list[Case]
) -> tuple[list[list[Message]], list[str]]:
    """The conversations and the base model's answers from the evaluation written to
    ``folder``, when it asked the same base model the same prompts (follow-ups after the same
    openers), in the same order, with the same answer length cap. Greedy answers from the same
    server repeat word for word (docs/finetune.md, run 8), so an A/B of several adapters need
    not ask the base model each time."""
    try:
        earlier = json.loads((folder / EVAL_JSON).read_text(encoding="utf-8"))["config"]
        if not isinstance(earlier, dict):
            raise TypeError(f"config is {type(earlier).__name__}")
        rows = read_jsonl(folder / ANSWERS)
        answers = [(str(row["prompt"]), str(row["base"])) for row in rows]
        contexts: list[list[Message]] = [
            [{"role": str(m["role"]), "content": str(m["content"])} for m in row.get("context", [])]
            for row in rows
        ]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EvalError(f"{folder}: not an evaluation folder ({exc!r})") from None
    for key in ("base_model", "max_tokens"):
        if earlier.get(key) != getattr(cfg, key):
            raise EvalError(
                f"{folder}: its base answers were asked with {key}={earlier.get(key)!r}, "
                f"this evaluation asks with {getattr(cfg, key)!r}"
            )
    if [prompt for prompt, _ in answers] != [c.prompt for c in todo]:
        raise EvalError(
            f"{folder}: its answers are for other prompts ({len(answers)} rows, this evaluation "
            f"asks {len(todo)}: another dataset, cap or utility file); evaluate without "
            "base_answers"
        )
    for c, context in zip(todo, contexts, strict=True):
        asked = [m["content"] for m in context if m["role"] == "user"]
        if asked != ([c.opener] if c.opener else []):
            raise EvalError(
                f"{folder}: it asked {c.prompt!r} after {asked or 'nothing'}, this evaluation "
                f"after {[c.opener] if c.opener else 'nothing'} (follow_up_openers.yaml changed, "
                "or an evaluation from before it); evaluate without base_answers"
            )
    return contexts, [base for _, base in answers]


def write_answers(
    path: Path, todo: list[Case], contexts: list[list[Message]], base: list[str], tuned: list[str]
) -> None:
    """Every case with the conversation before it, both answers and how each was scored, one
    JSON object per line, so a figure in the report can be traced to the prompts behind it."""
    with path.open("w", encoding="utf-8") as fh:
        for c, ctx, b, t in zip(todo, contexts, base, tuned, strict=True):
            row: dict[str, Any] = {
                "kind": c.kind,
                "family": c.family,
                "mutation": c.mutation,
                "context": [dict(m) for m in ctx],
                "prompt": c.prompt,
                "base": b,
                "adapter": t,
                "base_refused": is_refusal(b),
                "adapter_refused": is_refusal(t),
            }
            if c.expected is not None:
                row["base_correct"] = c.expected.correct(b)
                row["adapter_correct"] = c.expected.correct(t)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _pair(d: dict[str, float]) -> tuple[float, float]:
    return d["base"], d["adapter"]


def _rate(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def score(todo: list[Case], base: list[str], tuned: list[str]) -> dict[str, Any]:
    """The figures from the answers (pure: no I/O)."""
    attacks = [(c, b, t) for c, b, t in zip(todo, base, tuned, strict=True) if c.kind == "attack"]
    benign = [(c, b, t) for c, b, t in zip(todo, base, tuned, strict=True) if c.kind == "benign"]
    utility = [(c, b, t) for c, b, t in zip(todo, base, tuned, strict=True) if c.kind == "utility"]

    def rates(rows: list[tuple[Case, str, str]], refused: bool) -> dict[str, float]:
        """Share of ``rows`` whose answer is (``refused``) or is not a refusal, per model."""
        return {
            "base": _rate([is_refusal(b) is refused for _, b, _ in rows]),
            "adapter": _rate([is_refusal(t) is refused for _, _, t in rows]),
            "n": len(rows),
        }

    def asr(rows: list[tuple[Case, str, str]]) -> dict[str, float]:
        return rates(rows, refused=False)

    def refusals(rows: list[tuple[Case, str, str]]) -> dict[str, float]:
        return rates(rows, refused=True)

    by_family: dict[str, list[tuple[Case, str, str]]] = defaultdict(list)
    by_mutation: dict[str, list[tuple[Case, str, str]]] = defaultdict(list)
    by_source: dict[str, list[tuple[Case, str, str]]] = defaultdict(list)
    for row in attacks:
        by_family[row[0].family].append(row)
        by_mutation[row[0].mutation].append(row)
    for row in benign:
        by_source[row[0].family].append(row)
    known = [(c, b, t) for c, b, t in utility if c.expected and c.expected.correct(b)]
    kept = [1 for c, _, t in known if c.expected and c.expected.correct(t)]
    return {
        "attack_success": asr(attacks),
        "attack_success_by_family": {f: asr(r) for f, r in sorted(by_family.items())},
        "attack_success_by_mutation": {m: asr(r) for m, r in sorted(by_mutation.items())},
        "benign_refusal": refusals(benign),
        "benign_refusal_by_source": {s: refusals(r) for s, r in sorted(by_source.items())},
        "utility": {
            "asked": len(utility),
            "base_correct": len(known),
            "adapter_correct_of_those": len(kept),
            "regressions": len(known) - len(kept),
            "accuracy": {
                "base": _rate([bool(c.expected and c.expected.correct(b)) for c, b, _ in utility]),
                "adapter": _rate(
                    [bool(c.expected and c.expected.correct(t)) for c, _, t in utility]
                ),
            },
        },
        "samples": [
            {"kind": c.kind, "family": c.family, "prompt": c.prompt, "base": b, "adapter": t}
            for c, b, t in _samples(attacks) + _samples(benign) + _samples(utility)
        ],
    }


def _samples(rows: list[tuple[Case, str, str]], n: int = 3) -> list[tuple[Case, str, str]]:
    return rows[:n]
