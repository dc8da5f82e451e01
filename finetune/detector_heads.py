"""The detector heads ``finetune detector train`` can retrain, by name (``--head``).

Each kind is a class implementing :class:`HeadKind`: how to load and save its file, which
corpus rows and events it is trained on, how a candidate is fitted, and the whole-text verdict
the gate measures both heads with. Everything else (the gate, the reports, the atomic install,
the exit codes) is shared (:mod:`finetune.detector`).

* ``lexical`` (the default policy's ``injection_lexical``): TF-IDF n-grams + logistic regression
  (:mod:`gateway.detection.lexical`), trained exactly as ``python -m gateway.detection.train
  lexical`` trains the bundled head: the *whole* corpus train split (plus the train-split events),
  padded copies of half its attacks, and stdlib code and identifiers as extra benign text.
* ``semantic`` (the opt-in ``injection_semantic``): MiniLM embeddings + logistic regression and
  kNN bank (:mod:`gateway.detection.semantic`), on the sampled train split
  (:mod:`finetune.detector_train`).

An unknown name fails listing the known ones (:func:`kind`).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from finetune.detector_train import (
    Embed,
    TextEncoder,
    cached,
    fit_candidate,
    flagged,
    sampled_train,
)
from gateway.detection import paths

if TYPE_CHECKING:
    from gateway.detection.datasets import Row
    from gateway.detection.lexical import LexicalHead
    from gateway.detection.semantic import Head

WORK = Path(".gateway/detector")
"""The default folder of the report and of the installed heads."""


class Thresholded(Protocol):
    @property
    def threshold(self) -> float: ...


H = TypeVar("H", bound=Thresholded)


class HeadKind(Protocol[H]):
    name: ClassVar[str]
    check: ClassVar[str]
    """The check that runs this head (its ``head_file`` setting), for the policy snippet."""
    bundled: ClassVar[Path]
    """The head shipped in the package: the current one when ``--out`` does not exist yet."""
    scoring: ClassVar[str]
    """How the gate scores with this head, one paragraph of the report."""
    sampled: ClassVar[bool]
    """Whether the corpus train split is sampled (``--per-group``) or taken whole."""

    def __init__(self, encoder: TextEncoder | None, cache: Path) -> None: ...

    def load(self, path: Path) -> H: ...

    def save(self, head: H, path: Path) -> None: ...

    def training_rows(self, corpus: list[Row], events: list[Row], per_group: int) -> list[Row]:
        """The corpus rows the candidate is fitted on, then the train-split ``events``."""
        ...

    def fit(self, rows: list[Row], corpus: list[Row]) -> H: ...

    def extra_training(self, rows: list[Row]) -> dict[str, int]:
        """Counts, for the report, of what :meth:`fit` adds to ``rows``."""
        ...

    def flag(self, head: H, texts: list[str]) -> list[bool]:
        """Whole-text verdicts, one per text."""
        ...


class SemanticKind:
    name: ClassVar[str] = "semantic"
    check: ClassVar[str] = "injection_semantic"
    bundled: ClassVar[Path] = paths.HEAD
    sampled: ClassVar[bool] = True
    scoring: ClassVar[str] = (
        "Scoring is whole-text: one MiniLM embedding per prompt, `max(head, kNN)` against each "
        "head's own calibrated threshold, the same for both heads. The gateway's "
        "`injection_semantic` check also scores sentence windows and decoded views, so its "
        "figures (docs/detection.md) differ from these."
    )

    def __init__(self, encoder: TextEncoder | None, cache: Path) -> None:
        self._encoder = encoder
        self._cache = cache

    @cached_property
    def embed(self) -> Embed:
        """Through the embedding cache; MiniLM unless an encoder was given (tests)."""
        from gateway.detection import semantic

        return cached(self._encoder or semantic.default_embedder(), self._cache)

    def load(self, path: Path) -> Head:
        from gateway.detection.semantic import load_head

        try:
            return load_head(path)
        except KeyError as exc:
            raise ValueError(f"{path} is not a semantic head ({exc.args[0]})") from None

    def save(self, head: Head, path: Path) -> None:
        head.save(path)

    def training_rows(self, corpus: list[Row], events: list[Row], per_group: int) -> list[Row]:
        return sampled_train(corpus, per_group) + events

    def fit(self, rows: list[Row], corpus: list[Row]) -> Head:
        return fit_candidate(rows, corpus, self.embed)

    def extra_training(self, rows: list[Row]) -> dict[str, int]:
        return {}

    def flag(self, head: Head, texts: list[str]) -> list[bool]:
        return flagged(head, self.embed(texts)) if texts else []


class LexicalKind:
    name: ClassVar[str] = "lexical"
    check: ClassVar[str] = "injection_lexical"
    bundled: ClassVar[Path] = paths.LEXICAL
    sampled: ClassVar[bool] = False
    scoring: ClassVar[str] = (
        "Scoring is per prompt: `LexicalHead.score` of each prompt as written (its best run of "
        "2-32 words) against each head's own calibrated threshold, the same for both "
        "heads: the arithmetic `injection_lexical` runs on a message's original text. The check "
        "also scores decoded views (base64, rot13, ...); those are not scored here, so its "
        "figures (docs/detection.md) differ from these."
    )

    def __init__(self, encoder: TextEncoder | None, cache: Path) -> None:
        """No embeddings: ``encoder`` and ``cache`` are unused."""

    def load(self, path: Path) -> LexicalHead:
        from gateway.detection.lexical import load_lexical

        try:
            return load_lexical(path)
        except KeyError as exc:
            raise ValueError(f"{path} is not a lexical head ({exc.args[0]})") from None

    def save(self, head: LexicalHead, path: Path) -> None:
        head.save(path)

    def training_rows(self, corpus: list[Row], events: list[Row], per_group: int) -> list[Row]:
        return [r for r in corpus if r.split == "train"] + events

    def fit(self, rows: list[Row], corpus: list[Row]) -> LexicalHead:
        from gateway.detection.train import fit_lexical_padded

        return fit_lexical_padded(rows)

    def extra_training(self, rows: list[Row]) -> dict[str, int]:
        from gateway.detection.train import lexical_extra_benign, padded_attacks

        return {
            "padded_attack_copies": len(padded_attacks(rows)),
            "extra_benign_code_and_identifiers": len(lexical_extra_benign()),
        }

    def flag(self, head: LexicalHead, texts: list[str]) -> list[bool]:
        return [head.score(t) >= head.threshold for t in texts]


HEADS: dict[str, type[HeadKind[Any]]] = {k.name: k for k in (LexicalKind, SemanticKind)}
DEFAULT = LexicalKind.name
"""The head the default policy runs."""


def kind(name: str) -> type[HeadKind[Any]]:
    try:
        return HEADS[name]
    except KeyError:
        raise ValueError(f"unknown detector head {name!r}; known: {', '.join(HEADS)}") from None


def default_out(name: str) -> Path:
    return WORK / f"{name}_head.npz"
