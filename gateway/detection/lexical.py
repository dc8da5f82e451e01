"""Lexical head: TF-IDF over word and character n-grams, and a logistic regression.

The fast learned layer. Features (one vocabulary, prefixed by kind):

- ``w:`` word unigrams and bigrams (``\\w\\w+`` tokens, lower-cased);
- ``c:`` character 3- and 4-grams inside whitespace-separated words, padded with a space at
  each end (as scikit-learn's ``char_wb``): misspellings, inflections, other scripts.

A text's vector is its feature counts times their idf, divided by the square root of the sum of
``idf**2`` over its feature *occurrences* (for a text without repeated features, the l2 norm).
With that norm a text's logit is a ratio of two sums over occurrences, so the logit of any run
of words is two prefix-sum differences. :class:`LexicalHead` scores every run of
``MIN_SPAN``-``MAX_SPAN`` whitespace-separated pieces (a shorter text whole) and takes the
highest:

    score(before + text + after) >= score(text)   for any text of at least MIN_SPAN pieces,

because every run of the text is a run of the longer text, with the same features (a bigram
counts in a run only when both of its words are inside it). Benign words around an attack
cannot hide it. A text longer than ``MAX_SPAN`` pieces is never scored whole: with this norm a
long text's logit grows with the square root of its length, and a long benign document would
score like an attack. The price of scoring runs is that every run of benign text is scored too:
training (:func:`.train.fit_lexical`) mines the highest-scoring runs of benign texts as extra
benign rows (and of attacks as attack rows), and the threshold is calibrated on held-out benign
texts scored the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt

_WORD = re.compile(r"\w\w+")
CHAR_SIZES = (3, 4)
MIN_SPAN = 2
"""Shortest run of pieces scored (a text shorter than this is scored whole)."""
MAX_SPAN = 32
"""Longest run of pieces scored."""
FORMAT = 2
"""Version of the saved head: 2 is the occurrence norm (1, sublinear tf and l2, is refused)."""
_PIECE_CACHE = 65_536
_RECENT = 64
"""Texts whose :meth:`LexicalHead.best` is kept (a request's views, a few requests)."""
FloatArray = npt.NDArray[np.float64]


def _piece_features(piece: str) -> tuple[str, ...]:
    """Word unigrams and character n-grams of one lower-cased whitespace-separated piece."""
    out = [f"w:{t}" for t in _WORD.findall(piece)]
    padded = f" {piece} "
    for n in CHAR_SIZES:
        if len(padded) <= n:
            out.append(f"c:{padded}")
            break
        out += [f"c:{padded[i : i + n]}" for i in range(len(padded) - n + 1)]
    return tuple(out)


def _bigrams(tokens: list[str]) -> list[str]:
    return [f"w:{a} {b}" for a, b in pairwise(tokens)]


def features(text: str) -> list[str]:
    """The n-grams of ``text``, word and character, each prefixed by its kind."""
    out: list[str] = []
    tokens: list[str] = []
    for piece in text.lower().split():
        out += _piece_features(piece)
        tokens += _WORD.findall(piece)
    return out + _bigrams(tokens)


def _prefix(values: list[float] | FloatArray) -> FloatArray:
    return np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])


def _runs(n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Start and end (exclusive) of every run of ``MIN_SPAN``-``MAX_SPAN`` of ``n`` pieces (the
    whole text when it has fewer than ``MIN_SPAN``)."""
    lengths = np.arange(min(MIN_SPAN, n), min(MAX_SPAN, n) + 1)
    starts = np.arange(n)[:, None]
    ends = starts + lengths[None, :]
    keep = ends <= n
    return np.broadcast_to(starts, ends.shape)[keep], ends[keep]


@dataclass(frozen=True, slots=True)
class LexicalHead:
    names: tuple[str, ...]
    idf: npt.NDArray[np.float32]
    coef: npt.NDArray[np.float32]
    intercept: float
    threshold: float
    """Calibrated at training: the 99.5th percentile out-of-fold score of benign train rows."""
    vocab: dict[str, int] = field(init=False, repr=False)
    weight: FloatArray = field(init=False, repr=False)
    """Per feature occurrence: ``idf * coef`` (its share of the dot product)."""
    square: FloatArray = field(init=False, repr=False)
    """Per feature occurrence: ``idf ** 2`` (its share of the squared norm)."""
    cache: dict[str, tuple[float, float, tuple[str, ...]]] = field(init=False, repr=False)
    recent: dict[str, tuple[float, str]] = field(init=False, repr=False)
    """The last texts' :meth:`best`: the lexical check and the semantic layer's screen both ask
    about every view of a request, and share one head (:func:`load_lexical`)."""

    def __post_init__(self) -> None:
        idf = self.idf.astype(np.float64)
        object.__setattr__(self, "vocab", {n: i for i, n in enumerate(self.names)})
        object.__setattr__(self, "weight", idf * self.coef.astype(np.float64))
        object.__setattr__(self, "square", idf * idf)
        object.__setattr__(self, "cache", {})
        object.__setattr__(self, "recent", {})

    def score(self, text: str) -> float:
        """Highest P(attack) over the text's runs of pieces."""
        return self.best(text)[0]

    def best(self, text: str) -> tuple[float, str]:
        """The highest P(attack) over the text's runs, and that run."""
        hit = self.recent.get(text)
        if hit is None:
            hit = self._best(text)
            if len(self.recent) >= _RECENT:
                del self.recent[next(iter(self.recent))]  # the oldest
            self.recent[text] = hit
        return hit

    def _best(self, text: str) -> tuple[float, str]:
        pieces = text.split()
        if not pieces:
            return _sigmoid(self.intercept), text
        start, end = _runs(len(pieces))
        logits = self._logits(pieces, start, end)
        i = int(np.argmax(logits))
        return _sigmoid(float(logits[i])), " ".join(pieces[start[i] : end[i]])

    def _logits(
        self, pieces: list[str], start: npt.NDArray[np.int64], end: npt.NDArray[np.int64]
    ) -> FloatArray:
        dots: list[float] = []
        squares: list[float] = []
        tokens: list[str] = []
        token_piece: list[int] = []
        for i, piece in enumerate(pieces):
            dot, square, words = self._piece(piece.lower())
            dots.append(dot)
            squares.append(square)
            tokens += words
            token_piece += [i] * len(words)
        first: list[int] = []
        last: list[int] = []
        b_dots: list[float] = []
        b_squares: list[float] = []
        vocab = self.vocab
        for k, bigram in enumerate(_bigrams(tokens), start=1):
            j = vocab.get(bigram)
            if j is not None:
                first.append(token_piece[k - 1])
                last.append(token_piece[k])
                b_dots.append(float(self.weight[j]))
                b_squares.append(float(self.square[j]))
        # A bigram counts in run [start, end) when both its words are inside: its indices
        # (sorted by both pieces) from the first with first >= start to the last with last < end.
        lo = np.searchsorted(np.array(first, dtype=np.int64), start, "left")
        hi = np.maximum(np.searchsorted(np.array(last, dtype=np.int64), end - 1, "right"), lo)
        d, q, bd, bq = _prefix(dots), _prefix(squares), _prefix(b_dots), _prefix(b_squares)
        run_dot = d[end] - d[start] + bd[hi] - bd[lo]
        run_square = q[end] - q[start] + bq[hi] - bq[lo]
        ratio: FloatArray = np.divide(
            run_dot, np.sqrt(run_square), out=np.zeros_like(run_dot), where=run_square > 0
        )
        return ratio + self.intercept

    def _piece(self, piece: str) -> tuple[float, float, tuple[str, ...]]:
        """A lower-cased piece's summed weights and squares over its known features, and its
        word tokens (cached per head, bounded)."""
        hit = self.cache.get(piece)
        if hit is None:
            vocab = self.vocab
            known = [j for f in _piece_features(piece) if (j := vocab.get(f)) is not None]
            hit = (
                float(self.weight[known].sum()),
                float(self.square[known].sum()),
                tuple(_WORD.findall(piece)),
            )
            if len(self.cache) >= _PIECE_CACHE:
                self.cache.clear()
            self.cache[piece] = hit
        return hit

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            features=np.frombuffer("\n".join(self.names).encode("utf-8"), dtype=np.uint8),
            idf=self.idf,
            coef=self.coef,
            calibration=np.array([self.intercept, self.threshold]),
            format=np.array(FORMAT),
        )


def _sigmoid(logit: float) -> float:
    return float(1.0 / (1.0 + np.exp(-logit)))


def load_lexical(path: Path) -> LexicalHead:
    """The head in ``path``: one instance per file version, shared by the checks that read it."""
    stat = path.stat()
    return _load_lexical(path.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_lexical(path: Path, mtime_ns: int, size: int) -> LexicalHead:
    with np.load(path) as data:
        names = tuple(data["features"].tobytes().decode("utf-8").split("\n"))
        found = int(data["format"]) if "format" in data.files else 1
        if found != FORMAT:
            raise ValueError(
                f"lexical head format {found}, this gateway reads format {FORMAT}: retrain it "
                "with `python -m gateway.detection.train lexical`"
            )
        intercept, threshold = (float(x) for x in data["calibration"])
        return LexicalHead(
            names,
            data["idf"].astype(np.float32),
            data["coef"].astype(np.float32),
            intercept,
            threshold,
        )
