"""The detector's benchmark (``gateway eval detection``): pure functions returning tables.

* Fast stage: the four cheap checks (unicode_smuggling, injection_signatures,
  adversarial_suffix, injection_lexical) run through a real
  :class:`~gateway.pipeline.Pipeline` on every ``test``-split row.
* Semantic stage: ``injection_semantic`` on a seeded sample of the test split (at most
  ``per_group`` rows per source and label), because MiniLM on two CPU cores is slow.
* Leave-one-family-out: the head and kNN bank are refitted without one family, then scored on
  that family's test rows (whole-text embeddings).
* Benign padding: 50 benign words prepended, appended or split around detected attacks must not
  flip them.
* Latency: the input stage on a 512-token prompt, p50/p95 over repeated runs (caches cleared).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gateway.checks import build_check
from gateway.detection import datasets
from gateway.detection.datasets import Row
from gateway.detection.views import analyse
from gateway.openai_api import Endpoint, Segment
from gateway.pipeline import CheckContext, Pipeline, Rule, Stage

if TYPE_CHECKING:
    from gateway.checks.injection_semantic import InjectionSemantic

CTX = CheckContext(Endpoint.CHAT, "eval", Stage.INPUT)
FAST_CHECKS = (
    "unicode_smuggling",
    "injection_signatures",
    "adversarial_suffix",
    "injection_lexical",
)
PAD_WORDS = [
    "please",
    "could",
    "you",
    "help",
    "me",
    "with",
    "this",
    "when",
    "you",
    "have",
    "a",
    "moment",
    "thanks",
    "the",
    "weather",
    "here",
    "has",
    "been",
    "mild",
    "and",
    "we",
    "walked",
    "along",
    "the",
    "river",
    "after",
    "lunch",
    "before",
    "heading",
    "home",
    "to",
    "cook",
    "dinner",
    "together",
    "with",
    "friends",
    "from",
    "work",
]


def fast_pipeline(exclude: Sequence[str] = ()) -> Pipeline:
    rules = [Rule(name, name, build_check(name, {})) for name in FAST_CHECKS if name not in exclude]
    return Pipeline(Stage.INPUT, rules)


def screened_pipeline() -> Pipeline:
    """The default policy's detector: the fast layers, then the semantic layer behind the
    lexical screen (:mod:`gateway.detection.screen`)."""
    check = build_check("injection_semantic", {"preload": False, "screen": True})
    screened = Rule("injection_semantic", "injection_semantic", check, timeout_s=600)
    return Pipeline(Stage.INPUT, [*fast_pipeline().rules, screened])


def semantic_pipeline() -> Pipeline:
    check = build_check("injection_semantic", {"preload": False})
    return Pipeline(Stage.INPUT, [Rule("semantic", "injection_semantic", check, timeout_s=600)])


def run_blocked(pipeline: Pipeline, texts: Sequence[str]) -> tuple[list[bool], list[float]]:
    async def go() -> tuple[list[bool], list[float]]:
        blocked, times = [], []
        for text in texts:
            start = time.perf_counter()
            result = await pipeline.run([Segment("user", text, 0, ())], CTX)
            times.append(time.perf_counter() - start)
            blocked.append(result.blocked)
        return blocked, times

    return asyncio.run(go())


@dataclass
class Tally:
    n: int = 0
    hit: int = 0

    def add(self, hit: bool) -> None:
        self.n += 1
        self.hit += hit

    @property
    def rate(self) -> float:
        return self.hit / self.n if self.n else float("nan")


@dataclass
class Report:
    sections: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)

    def table(self, title: str, header: list[str], rows: list[list[str]]) -> None:
        self.sections.append((title, header, rows))

    def markdown(self) -> str:
        out: list[str] = []
        for title, header, rows in self.sections:
            out += [
                f"### {title}",
                "",
                "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header),
            ]
            out += ["| " + " | ".join(r) + " |" for r in rows]
            out.append("")
        return "\n".join(out)


def pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def per_group(rows: list[Row], blocked: list[bool], key: Callable[[Row], str]) -> dict[str, Tally]:
    out: dict[str, Tally] = defaultdict(Tally)
    for r, b in zip(rows, blocked, strict=True):
        out[key(r)].add(b)
    return dict(sorted(out.items()))


def detection_tables(report: Report, name: str, rows: list[Row], blocked: list[bool]) -> None:
    attacks = [(r, b) for r, b in zip(rows, blocked, strict=True) if r.label == 1]
    benign = [(r, b) for r, b in zip(rows, blocked, strict=True) if r.label == 0]
    by_source = per_group(rows, blocked, lambda r: f"{r.source}|{r.label}")
    table = []
    for source in sorted({r.source for r in rows}):
        att, ben = by_source.get(f"{source}|1", Tally()), by_source.get(f"{source}|0", Tally())
        table.append([source, str(att.n), pct(att.rate), str(ben.n), pct(ben.rate)])
    all_att = Tally(len(attacks), sum(b for _, b in attacks))
    all_ben = Tally(len(benign), sum(b for _, b in benign))
    trig = Tally()
    for r, b in benign:
        if r.trigger:
            trig.add(not b)
    table.append(["**all**", str(all_att.n), pct(all_att.rate), str(all_ben.n), pct(all_ben.rate)])
    report.table(
        f"{name}: per dataset (test split)",
        ["dataset", "attacks", "detected", "benign", "false positives"],
        table,
    )
    fam = per_group([r for r, _ in attacks], [b for _, b in attacks], lambda r: r.family)
    report.table(
        f"{name}: per attack family (test split)",
        ["family", "attacks", "detected"],
        [[f, str(t.n), pct(t.rate)] for f, t in fam.items()],
    )
    report.table(
        f"{name}: over-defense",
        ["benign trigger-word prompts", "passed"],
        [[str(trig.n), pct(trig.rate)]],
    )


def sample(rows: list[Row], n: int, seed: int = 7) -> list[Row]:
    groups: dict[tuple[str, int], list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.source, r.label)].append(r)
    rng = random.Random(seed)
    out: list[Row] = []
    for key in sorted(groups):
        g = groups[key]
        out += g if len(g) <= n else rng.sample(g, n)
    return out


PAD_SIDES = ("prepended", "appended", "around")
"""Where the 50 benign words go: before the attack, after it, or 25 on each side."""


def padded(text: str, rng: random.Random, side: str) -> str:
    pad = [rng.choice(PAD_WORDS) for _ in range(50)]
    if side == "prepended":
        return f"{' '.join(pad)} {text}"
    if side == "appended":
        return f"{text} {' '.join(pad)}"
    if side == "around":
        return f"{' '.join(pad[:25])} {text} {' '.join(pad[25:])}"
    raise ValueError(f"unknown padding side {side!r}; known: {', '.join(PAD_SIDES)}")


Classifier = Callable[[Sequence[str]], list[bool]]
"""Texts in, one ``is attack`` per text out: a pipeline (:func:`pipeline_classifier`) or a peer."""


def pipeline_classifier(pipeline: Pipeline) -> Classifier:
    return lambda texts: run_blocked(pipeline, texts)[0]


def padding_kept(classify: Classifier, attacks: list[str]) -> tuple[float, ...]:
    """Share of detected ``attacks`` still detected with 50 benign words, per :data:`PAD_SIDES`."""
    rng = random.Random(11)
    kept = []
    for side in PAD_SIDES:
        blocked = classify([padded(t, rng, side) for t in attacks])
        kept.append(sum(blocked) / len(attacks) if attacks else float("nan"))
    return tuple(kept)


def padding_table(report: Report, name: str, classify: Classifier, attacks: list[str]) -> None:
    kept = padding_kept(classify, attacks)
    report.table(
        f"{name}: benign padding (50 words) on detected attacks",
        ["padding", "detected attacks", "still detected"],
        [[side, str(len(attacks)), pct(k)] for side, k in zip(PAD_SIDES, kept, strict=True)],
    )


def technical_table(report: Report, name: str, classify: Classifier) -> None:
    """False positives on benign text no detector artifact was trained on: chunks of the
    standard-library modules in the ``test`` split, identifiers (hashes, UUIDs, base64), and
    Django's translated messages in the ``test`` split's languages (not English)."""
    from gateway.detection import suffix_data

    sets = {
        "stdlib code, held-out modules (400-char chunks)": suffix_data.stdlib_code("test"),
        "hashes, UUIDs, base64 in short sentences": suffix_data.identifiers(500, seed=99),
        "translated messages, held-out languages (400-char chunks)": suffix_data.translations(
            "test"
        ),
    }
    rows = []
    for label, texts in sets.items():
        blocked = classify(texts)
        rows.append([label, str(len(texts)), pct(sum(blocked) / len(texts))])
    title = f"{name}: benign technical and non-English text"
    report.table(title, ["texts", "n", "false positives"], rows)


LONG_LENGTHS = (64, 256, 512)
LONG_PER_LENGTH = 200


def long_text_table(
    report: Report, name: str, classify: Classifier, rows: list[Row], blocked: list[bool]
) -> None:
    """False positives on long benign texts: the test split's benign prompts that the detector
    passes one by one (``blocked``: its verdicts on ``rows``; 7 words at the median), drawn at
    random and joined into texts of 64, 256 and 512 words (:func:`.joined.benign_composites`,
    seeded). Every layer that scores a text by its best window or run sees more of them in a
    long text; short prompts alone do not show it. (Joined from all the benign prompts, a long
    text would be blocked for the one prompt in it the detector blocks alone: at 0.8% of
    prompts, 43% of 70-prompt texts.)"""
    from gateway.detection.joined import benign_composites

    passed = [r.text for r, b in zip(rows, blocked, strict=True) if r.label == 0 and not b]
    made = benign_composites(passed, list(range(len(passed))), 99, LONG_LENGTHS, LONG_PER_LENGTH)
    table = []
    for words, texts in made.items():
        verdicts = classify(texts)
        label = f"benign test prompts it passes, joined: {words} words"
        table.append([label, str(len(texts)), pct(sum(verdicts) / max(len(texts), 1))])
    report.table(f"{name}: long benign text", ["texts", "n", "false positives"], table)


@dataclass(frozen=True)
class Summary:
    """One detector's headline figures, for the side-by-side table."""

    name: str
    rows: list[Row]
    blocked: list[bool]
    padding: tuple[float, ...]
    latency: list[float]

    def cells(self) -> list[str]:
        att = [b for r, b in zip(self.rows, self.blocked, strict=True) if r.label == 1]
        ben = [b for r, b in zip(self.rows, self.blocked, strict=True) if r.label == 0]
        trig = [not b for r, b in zip(self.rows, self.blocked, strict=True) if r.trigger]
        p50, p95 = np.percentile(self.latency, [50, 95])
        return [
            self.name,
            pct(sum(att) / len(att) if att else float("nan")),
            pct(sum(ben) / len(ben) if ben else float("nan")),
            pct(sum(trig) / len(trig) if trig else float("nan")),
            pct(min(self.padding)),
            f"{p50:.2f}",
            f"{p95:.2f}",
        ]


def summary_table(report: Report, title: str, summaries: list[Summary]) -> None:
    report.table(
        title,
        [
            "detector",
            "attacks detected",
            "benign false positives",
            "benign trigger-word passed",
            "padding: still detected (worst side)",
            "p50 ms (512 tok)",
            "p95 ms (512 tok)",
        ],
        [s.cells() for s in summaries],
    )


def benign_prompt(tokens: int) -> str:
    """Benign application text of exactly ``tokens`` MiniLM (WordPiece) tokens, [CLS] and [SEP]
    included: the curated benign documents, support requests and questions (ours), in a seeded
    order, repeated as needed, cut at a word and topped up with full stops (one token each)."""
    import yaml
    from tokenizers import Tokenizer

    from gateway.detection.paths import BENIGN
    from gateway.detection.semantic import minilm_dir

    tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    data = yaml.safe_load(BENIGN.read_text(encoding="utf-8"))["categories"]
    texts = [*data["documents"], *data["support"], *data["questions"]]
    random.Random(3).shuffle(texts)
    words = " ".join(texts * (1 + tokens // 200)).split()

    def count(n: int) -> int:
        return len(tokenizer.encode(" ".join(words[:n])).ids)

    lo, hi = 0, len(words)
    while lo < hi:  # the most words that fit
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(mid) <= tokens else (lo, mid - 1)
    return " ".join(words[:lo]) + " ." * (tokens - count(lo))


def prompt_512() -> str:
    return benign_prompt(512)


def latency_ms(
    classify: Classifier, text: str, runs: int, clear: Callable[[], None]
) -> list[float]:
    """Milliseconds per call on ``text`` (made unique per run, caches cleared before each): for
    a synchronous classifier (the peers)."""
    out = []
    for i in range(runs):
        clear()
        start = time.perf_counter()
        classify([f"{text} {i}"])
        out.append(1000 * (time.perf_counter() - start))
    return out


def pipeline_latency_ms(
    pipeline: Pipeline, text: str, runs: int, clear: Callable[[], None]
) -> list[float]:
    """Milliseconds per ``Pipeline.run`` on ``text`` (made unique per run, caches cleared before
    each), all inside one running event loop, as a request pays it: a loop (and its thread pool
    for model work) made per call would be timed too, which the peers' plain calls do not pay."""

    async def go() -> list[float]:
        out = []
        for i in range(runs):
            clear()
            start = time.perf_counter()
            await pipeline.run([Segment("user", f"{text} {i}", 0, ())], CTX)
            out.append(1000 * (time.perf_counter() - start))
        return out

    return asyncio.run(go())


def latency_table(report: Report, rows: list[list[str]]) -> None:
    report.table(
        "Latency, input stage, one 512-token user prompt (this machine, caches cleared)",
        ["stage", "runs", "p50 ms", "p95 ms"],
        rows,
    )


def latency_row(name: str, samples: list[float]) -> list[str]:
    p50, p95 = np.percentile(samples, [50, 95])
    return [name, str(len(samples)), f"{p50:.2f}", f"{p95:.2f}"]


def load_test() -> list[Row]:
    """The ``test`` split, fetching the corpora first on a fresh machine."""
    return [r for r in datasets.load(datasets.ensure()) if r.split == "test"]


def clear_caches() -> None:
    analyse.cache_clear()


def screened_share_table(
    report: Report, check: InjectionSemantic, rows: list[Row], fast_blocked: list[bool]
) -> None:
    """How much traffic the screened semantic layer is asked about: the texts the fast layers
    pass and the screen lets through (the rest never pay for MiniLM)."""
    table = []
    for label, name in ((0, "benign"), (1, "attacks")):
        asked = Tally()
        for r, b in zip(rows, fast_blocked, strict=True):
            if r.label == label:
                asked.add(not b and check.asks(r.text))
        table.append([name, str(asked.n), pct(asked.rate)])
    # a long text has more runs for the lexical head to score high: long benign documents reach
    # the screen far more often than the (mostly short) test texts
    for tokens in (64, 512, 1024, 2048):
        asked_long = check.asks(benign_prompt(tokens))
        table.append([f"benign {tokens}-token prompt (as latency)", "1", pct(float(asked_long))])
    report.table(
        "Default policy: texts the screened semantic layer is asked about (test split)",
        ["texts", "n", "asked (MiniLM run)"],
        table,
    )


def lofo_table(
    report: Report,
    train: tuple[list[Row], np.ndarray],
    test: tuple[list[Row], np.ndarray],
    rest_blocked: dict[str, bool],
    threshold: float,
    lexical_train: list[Row],
) -> None:
    """Leave one family out of both learned heads (the semantic head and kNN bank, and the
    lexical head, trained as the bundled ones are); score that family's unseen test rows.
    ``rest_blocked``: the verdicts of the fast layers that learn nothing (smuggling,
    signatures, suffix) on the test texts."""
    from collections import Counter

    from gateway.detection.train import fit_head, fit_lexical_padded

    train_rows, train_emb = train
    test_rows, test_emb = test
    counts = Counter(r.family for r in train_rows if r.label == 1)
    test_counts = Counter(r.family for r in test_rows if r.label == 1)
    benign_idx = [i for i, r in enumerate(test_rows) if r.label == 0]
    rows = []
    for fam in sorted(f for f, c in counts.items() if c >= 20 and test_counts[f] >= 5):
        head = fit_head(train_rows, train_emb, exclude_family=fam)
        lexical = fit_lexical_padded([r for r in lexical_train if r.family != fam])
        idx = [i for i, r in enumerate(test_rows) if r.family == fam and r.label == 1]
        h, knn, _ = head.scores(test_emb[idx])
        sem = np.maximum(h, knn) >= threshold
        lex = [lexical.score(test_rows[i].text) >= lexical.threshold for i in idx]
        full = [
            s or x or rest_blocked[test_rows[i].text] for s, x, i in zip(sem, lex, idx, strict=True)
        ]
        bh, bk, _ = head.scores(test_emb[benign_idx])
        fpr = float(np.mean(np.maximum(bh, bk) >= threshold)) if benign_idx else float("nan")
        lex_fp = [lexical.score(test_rows[i].text) >= lexical.threshold for i in benign_idx]
        rows.append(
            [
                fam,
                str(counts[fam]),
                str(len(idx)),
                pct(float(np.mean(sem))),
                pct(sum(lex) / len(lex)),
                pct(sum(full) / len(full)),
                pct(fpr),
                pct(sum(lex_fp) / len(lex_fp) if lex_fp else float("nan")),
            ]
        )
    report.table(
        "Leave-one-family-out (semantic head, kNN bank and lexical head refitted without the "
        "family; whole-text embeddings; each head's own calibrated threshold)",
        [
            "held-out family",
            "semantic train rows removed",
            "test attacks",
            "semantic detected",
            "lexical detected",
            "all layers detected",
            "benign FPR (semantic)",
            "benign FPR (lexical)",
        ],
        rows,
    )
