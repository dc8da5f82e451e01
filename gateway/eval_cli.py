"""``gateway eval``: benchmarks. ``gateway eval detection`` prints the figures in
docs/detection.md (see :mod:`gateway.detection.evaluate` for what each table means)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gateway.detection.datasets import Row
    from gateway.detection.evaluate import Report

eval_app = typer.Typer(help="Benchmarks of the gateway's guards.", no_args_is_help=True)


@eval_app.command("detection")
def detection(
    per_group: Annotated[
        int, typer.Option(help="semantic stage: test rows sampled per (source, label)")
    ] = 120,
    semantic: Annotated[bool, typer.Option(help="also evaluate the semantic layer")] = True,
    latency_runs: Annotated[int, typer.Option(help="runs for the fast-stage latency")] = 200,
    report: Annotated[Path | None, typer.Option(help="also write the tables here")] = None,
) -> None:
    """Detection rate, false positives, over-defense, padding, leave-one-family-out, latency."""
    from gateway.detection import evaluate as ev

    rows = ev.load_test()
    out = ev.Report()
    fast = ev.fast_pipeline()
    texts = [r.text for r in rows]
    fast_blocked, _ = ev.run_blocked(fast, texts)
    ev.detection_tables(out, "Fast layers (smuggling + signatures + suffix)", rows, fast_blocked)
    detected = [r.text for r, b in zip(rows, fast_blocked, strict=True) if b and r.label == 1]
    ev.padding_table(out, "Fast layers", fast, detected)
    prompt = ev.prompt_512()
    latency = [
        ev.latency_row("fast layers", ev.latency_ms(fast, prompt, latency_runs, ev.clear_caches))
    ]
    if semantic:
        _semantic(out, rows, fast_blocked, prompt, latency, per_group)
    ev.latency_table(out, latency)
    text = out.markdown()
    typer.echo(text)
    if report is not None:
        report.write_text(text, encoding="utf-8")


def _semantic(
    out: Report,
    rows: list[Row],
    fast_blocked: list[bool],
    prompt: str,
    latency: list[list[str]],
    per_group: int,
) -> None:
    from gateway.checks.injection_semantic import InjectionSemantic
    from gateway.detection import evaluate as ev
    from gateway.detection.embeddings_cache import embed_cached
    from gateway.detection.paths import cache_dir
    from gateway.detection.semantic import default_embedder
    from gateway.detection.train import training_set
    from gateway.pipeline import Pipeline, Stage

    fast_by_text = {r.text: b for r, b in zip(rows, fast_blocked, strict=True)}
    sampled = ev.sample(rows, per_group)
    sem_pipeline = ev.semantic_pipeline()
    sem_blocked, _ = ev.run_blocked(sem_pipeline, [r.text for r in sampled])
    combined = [s or fast_by_text[r.text] for r, s in zip(sampled, sem_blocked, strict=True)]
    ev.detection_tables(
        out,
        f"Semantic layer alone (sample: <= {per_group} per source/label)",
        sampled,
        sem_blocked,
    )
    ev.detection_tables(out, "All layers (same sample)", sampled, combined)
    detected = [r.text for r, b in zip(sampled, combined, strict=True) if b and r.label == 1]
    everything = Pipeline(Stage.INPUT, [*ev.fast_pipeline().rules, *sem_pipeline.rules])
    ev.padding_table(out, "All layers", everything, detected[:150])
    emb = embed_cached([r.text for r in sampled], default_embedder(), cache_dir() / "emb.npz")
    check = sem_pipeline.rules[0].check
    assert isinstance(check, InjectionSemantic)
    ev.lofo_table(out, training_set(600), (sampled, emb), fast_by_text, check.threshold)

    def clear() -> None:
        ev.clear_caches()
        check.scorer.clear_cache()

    latency.append(ev.latency_row("semantic layer", ev.latency_ms(sem_pipeline, prompt, 10, clear)))
    latency.append(ev.latency_row("all layers", ev.latency_ms(everything, prompt, 10, clear)))
