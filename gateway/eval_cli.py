"""``gateway eval``: benchmarks. ``gateway eval detection`` prints the figures in
docs/detection.md (see :mod:`gateway.detection.evaluate` for what each table means)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gateway.detection.datasets import Row
    from gateway.detection.evaluate import Classifier, Report, Summary

eval_app = typer.Typer(help="Benchmarks of the gateway's guards.", no_args_is_help=True)

PADDING_CAP = 150
"""Detected attacks re-scored with padding, per detector (the slow ones bound the run)."""


@eval_app.command("detection")
def detection(
    per_group: Annotated[
        int, typer.Option(help="sampled stage: test rows per (source, label)")
    ] = 120,
    semantic: Annotated[bool, typer.Option(help="also evaluate the semantic layer")] = True,
    screened: Annotated[
        bool, typer.Option(help="evaluate the default policy (fast + screened semantic)")
    ] = True,
    peers: Annotated[
        bool, typer.Option(help="also evaluate the peer detectors (the 'eval' extra)")
    ] = True,
    latency_runs: Annotated[int, typer.Option(help="runs for the fast-stage latency")] = 200,
    report: Annotated[Path | None, typer.Option(help="also write the tables here")] = None,
) -> None:
    """Detection rate, false positives, over-defense, padding, leave-one-family-out, latency."""
    from gateway.detection import evaluate as ev

    rows = ev.load_test()
    out = ev.Report()
    fast_pipeline = ev.fast_pipeline()
    fast = ev.pipeline_classifier(fast_pipeline)
    fast_blocked = fast([r.text for r in rows])
    ev.detection_tables(
        out, "Fast layers (smuggling + signatures + suffix + lexical)", rows, fast_blocked
    )
    detected = [r.text for r, b in zip(rows, fast_blocked, strict=True) if b and r.label == 1]
    ev.padding_table(out, "Fast layers", fast, detected)
    ev.technical_table(out, "Fast layers", fast)
    ev.long_text_table(out, "Fast layers", fast, rows, fast_blocked)

    fast_by_text = {r.text: b for r, b in zip(rows, fast_blocked, strict=True)}
    sampled = ev.sample(rows, per_group)
    prompt = ev.prompt_512()
    summaries = [
        _summary(
            "ours: fast layers",
            sampled,
            [fast_by_text[r.text] for r in sampled],
            fast,
            ev.pipeline_latency_ms(fast_pipeline, prompt, latency_runs, ev.clear_caches),
        )
    ]
    if screened:
        summaries.append(_default_policy(out, rows, fast_blocked, sampled, prompt, latency_runs))
    if semantic:
        summaries += _semantic(out, sampled, fast_by_text, prompt, per_group)
    if peers:
        summaries += _peers(out, sampled, prompt)
    ev.summary_table(
        out,
        f"Side by side on the same sample (test split, <= {per_group} rows per source and "
        "label); latency on one 512-token prompt, this machine",
        summaries,
    )
    text = out.markdown()
    typer.echo(text)
    if report is not None:
        report.write_text(text, encoding="utf-8")


def _summary(
    name: str, rows: list[Row], blocked: list[bool], classify: Classifier, latency: list[float]
) -> Summary:
    from gateway.detection import evaluate as ev

    detected = [r.text for r, b in zip(rows, blocked, strict=True) if b and r.label == 1]
    padding = ev.padding_kept(classify, detected[:PADDING_CAP])
    return ev.Summary(name, rows, blocked, padding, latency)


def _default_policy(
    out: Report,
    rows: list[Row],
    fast_blocked: list[bool],
    sampled: list[Row],
    prompt: str,
    latency_runs: int,
) -> Summary:
    """The default policy's detector (fast layers + screened semantic) on the whole test split;
    its side-by-side row on the sample."""
    from gateway.checks.injection_semantic import InjectionSemantic
    from gateway.detection import evaluate as ev

    pipeline = ev.screened_pipeline()
    check = pipeline.rules[-1].check
    assert isinstance(check, InjectionSemantic)
    classify = ev.pipeline_classifier(pipeline)
    blocked = classify([r.text for r in rows])
    name = "Default policy (fast layers + screened semantic)"
    ev.detection_tables(out, name, rows, blocked)
    ev.screened_share_table(out, check, rows, fast_blocked)
    detected = [r.text for r, b in zip(rows, blocked, strict=True) if b and r.label == 1]
    ev.padding_table(out, "Default policy", classify, detected)
    ev.technical_table(out, "Default policy", classify)
    ev.long_text_table(out, "Default policy", classify, rows, blocked)
    by_text = {r.text: b for r, b in zip(rows, blocked, strict=True)}

    def clear() -> None:
        ev.clear_caches()
        check.pieces.clear_cache()

    latency = ev.pipeline_latency_ms(pipeline, prompt, latency_runs, clear)
    return _summary(
        "ours: default policy (fast + screened semantic)",
        sampled,
        [by_text[r.text] for r in sampled],
        classify,
        latency,
    )


def _semantic(
    out: Report, sampled: list[Row], fast_by_text: dict[str, bool], prompt: str, per_group: int
) -> list[Summary]:
    from gateway.checks.injection_semantic import InjectionSemantic
    from gateway.detection import datasets
    from gateway.detection import evaluate as ev
    from gateway.detection.embeddings_cache import embed_cached
    from gateway.detection.paths import cache_dir
    from gateway.detection.semantic import default_embedder
    from gateway.detection.train import training_set
    from gateway.pipeline import Pipeline, Stage

    sem_pipeline = ev.semantic_pipeline()
    sem = ev.pipeline_classifier(sem_pipeline)
    sem_blocked = sem([r.text for r in sampled])
    combined = [s or fast_by_text[r.text] for r, s in zip(sampled, sem_blocked, strict=True)]
    ev.detection_tables(out, f"Semantic layer alone (sample: <= {per_group})", sampled, sem_blocked)
    ev.detection_tables(out, "All layers (same sample)", sampled, combined)
    everything_pipeline = Pipeline(Stage.INPUT, [*ev.fast_pipeline().rules, *sem_pipeline.rules])
    everything = ev.pipeline_classifier(everything_pipeline)
    emb = embed_cached([r.text for r in sampled], default_embedder(), cache_dir() / "emb.npz")
    check = sem_pipeline.rules[0].check
    assert isinstance(check, InjectionSemantic)
    rest = ev.pipeline_classifier(ev.fast_pipeline(exclude=("injection_lexical",)))
    rest_by_text = dict(
        zip((r.text for r in sampled), rest([r.text for r in sampled]), strict=True)
    )
    lexical_train = [r for r in datasets.load() if r.split == "train"]
    ev.lofo_table(
        out, training_set(600), (sampled, emb), rest_by_text, check.threshold, lexical_train
    )

    def clear() -> None:
        ev.clear_caches()
        check.pieces.clear_cache()

    return [
        _summary(
            "ours: semantic layer alone",
            sampled,
            sem_blocked,
            sem,
            ev.pipeline_latency_ms(sem_pipeline, prompt, 20, clear),
        ),
        _summary(
            "ours: all layers",
            sampled,
            combined,
            everything,
            ev.pipeline_latency_ms(everything_pipeline, prompt, 20, clear),
        ),
    ]


def _peers(out: Report, sampled: list[Row], prompt: str) -> list[Summary]:
    from collections.abc import Sequence

    from gateway.detection import evaluate as ev
    from gateway.detection.peers import PEERS, Detector, load_peer

    summaries = []
    for name in PEERS:
        detect = load_peer(name)

        def classify(texts: Sequence[str], detect: Detector = detect) -> list[bool]:
            return [detect(t) for t in texts]

        blocked = classify([r.text for r in sampled])
        ev.detection_tables(out, f"Peer {name} (same sample)", sampled, blocked)
        latency = ev.latency_ms(classify, prompt, 20, lambda: None)
        summaries.append(_summary(f"peer: {name}", sampled, blocked, classify, latency))
    return summaries
