"""Section 2: what the guards cost. The input stage of the default policy (size limit, deny-list,
the detector's fast layers, the screened semantic layer: the benign prompts are under its
screen, so MiniLM is not run) and the detector's fast layers alone, called in-process on
prompts of 64, 512 and 2,048 MiniLM tokens, single (one request at a time) and concurrent
(``concurrency`` requests at once on one event loop: the checks are CPU-bound, so each waits for
the others).

Reuses :mod:`gateway.detection.evaluate`'s prompt, context, pipeline and cache helpers; the
timer wraps ``Pipeline.run`` alone, inside one running event loop, so the figure is the guard's
cost as a request pays it (as evaluate's ``pipeline_latency_ms`` times it for the eval's table).
Caches are cleared and every text is unique, as there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.procs import REPO
from bench.report import percentiles
from gateway.detection.evaluate import (
    CTX,
    benign_prompt,
    clear_caches,
    fast_pipeline,
)
from gateway.openai_api import Segment
from gateway.pipeline import Pipeline
from gateway.policy import load_policy

TOKENS = (64, 512, 2048)


@dataclass(frozen=True, slots=True)
class GuardRow:
    stage: str
    tokens: int
    mode: str
    runs: int
    p50_ms: float
    p95_ms: float


def prompt(tokens: int) -> str:
    """Benign text of ``tokens`` MiniLM WordPiece tokens ([CLS] and [SEP] included), as
    evaluate's latency prompt: the timed path is the one a passing request takes."""
    return benign_prompt(tokens)


def stages() -> dict[str, Pipeline]:
    return {
        "default policy, input stage": load_policy(REPO / "policies" / "default.yaml").input,
        "detector fast layers": fast_pipeline(),
    }


def timed_ms(pipeline: Pipeline, text: str, rounds: int, concurrency: int) -> list[float]:
    """``rounds`` x ``concurrency`` runs. Within a round all start together and each one's time
    runs from that start to its own end, so waiting for the others counts."""

    async def one(i: int, start: float) -> float:
        result = await pipeline.run([Segment("user", f"{text} {i}", 0, ())], CTX)
        if result.blocked:  # a blocked prompt would time a shorter path than a passing one
            raise RuntimeError(f"the benign bench prompt was blocked: {result.findings()}")
        return 1000 * (time.perf_counter() - start)

    async def go() -> list[float]:
        out: list[float] = []
        for r in range(rounds):
            clear_caches()
            start = time.perf_counter()
            batch = (one(r * concurrency + i, start) for i in range(concurrency))
            out += await asyncio.gather(*batch)
        return out

    return asyncio.run(go())


def run(
    runs: int,
    concurrency: int,
    log: Callable[[str], None],
    tokens: Sequence[int] = TOKENS,
) -> list[GuardRow]:
    rows = []
    for name, pipeline in stages().items():
        for n in tokens:
            log(f"guards: {name}, {n} tokens")
            text = prompt(n)
            timed_ms(pipeline, text, 3, 1)  # warm-up: imports, compiled regexes
            single = timed_ms(pipeline, text, runs, 1)
            together = timed_ms(pipeline, text, max(1, runs // concurrency), concurrency)
            for mode, samples in (("single", single), (f"{concurrency} concurrent", together)):
                p50, p95 = percentiles(samples, (50, 95))
                rows.append(GuardRow(name, n, mode, len(samples), p50, p95))
    return rows
