"""Lexical head: TF-IDF over word and character n-grams, and a logistic regression.

The fast learned layer. Features (one vocabulary, prefixed by kind):

- ``w:`` word unigrams and bigrams (``\\w\\w+`` tokens, lower-cased);
- ``c:`` character 3- and 4-grams inside whitespace-separated words, padded with a space at
  each end (as scikit-learn's ``char_wb``): misspellings, inflections, other scripts.

Training (:mod:`.train`) fits scikit-learn's ``TfidfVectorizer`` with :func:`features` as its
analyzer (``sublinear_tf``, l2 norm) and a ``LogisticRegression``. :class:`LexicalHead` keeps
each feature's idf and coefficient and scores with the same arithmetic in numpy, over the whole
text *and* over windows of ``WINDOW_WORDS`` words (half overlapping), taking the highest: an
attack wrapped in benign padding still has a window that is mostly attack. Each whitespace-separated
piece's feature ids are cached (bounded), so repeated words cost a dict lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt

_WORD = re.compile(r"\w\w+")
CHAR_SIZES = (3, 4)
WINDOW_WORDS = 8
_STRIDE = WINDOW_WORDS // 2
_PIECE_CACHE = 65_536
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


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


@dataclass(frozen=True, slots=True)
class LexicalHead:
    names: tuple[str, ...]
    idf: FloatArray
    coef: FloatArray
    intercept: float
    threshold: float
    """Calibrated at training: the 99.5th percentile out-of-fold score of benign train rows."""
    vocab: dict[str, int] = field(init=False, repr=False)
    cache: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab", {n: i for i, n in enumerate(self.names)})
        object.__setattr__(self, "cache", {})

    def score(self, text: str) -> float:
        """Highest P(attack) of the whole text and its word windows."""
        ids, pos, n_pieces = self._occurrences(text)
        if not len(ids):
            return float(1.0 / (1.0 + np.exp(-self.intercept)))
        n_windows = 1 if n_pieces <= WINDOW_WORDS else -(-(n_pieces - WINDOW_WORDS) // _STRIDE) + 1
        hi = np.minimum(pos // _STRIDE, n_windows - 1)
        lo = hi - 1
        in_lo = (lo >= 0) & (pos < lo * _STRIDE + WINDOW_WORDS)
        whole = np.full(len(ids), n_windows)
        windows = np.concatenate([whole, hi, lo[in_lo]]) if n_windows > 1 else whole
        feats = np.concatenate([ids, ids, ids[in_lo]]) if n_windows > 1 else ids
        keys, counts = np.unique(windows * len(self.names) + feats, return_counts=True)
        win, feat = np.divmod(keys, len(self.names))
        value = self.idf[feat] * (1.0 + np.log(counts))
        size = n_windows + 1
        dot = np.bincount(win, weights=value * self.coef[feat], minlength=size)
        norm = np.sqrt(np.bincount(win, weights=value * value, minlength=size))
        seen = norm > 0
        logit = self.intercept + float((dot[seen] / norm[seen]).max())
        return float(1.0 / (1.0 + np.exp(-logit)))

    def _occurrences(self, text: str) -> tuple[IntArray, IntArray, int]:
        """Vocabulary ids of the text's features and the index of the piece each came from."""
        ids: list[int] = []
        pos: list[int] = []
        tokens: list[str] = []
        token_pos: list[int] = []
        pieces = text.lower().split()
        for i, piece in enumerate(pieces):
            known, words = self._piece(piece)
            ids += known
            pos += [i] * len(known)
            tokens += words
            token_pos += [i] * len(words)
        vocab = self.vocab
        for bigram, p in zip(_bigrams(tokens), token_pos[1:], strict=True):
            j = vocab.get(bigram)
            if j is not None:
                ids.append(j)
                pos.append(p)
        return np.array(ids, dtype=np.int64), np.array(pos, dtype=np.int64), len(pieces)

    def _piece(self, piece: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """A piece's known feature ids and its word tokens (cached per head, bounded)."""
        hit = self.cache.get(piece)
        if hit is None:
            vocab = self.vocab
            known = tuple(j for f in _piece_features(piece) if (j := vocab.get(f)) is not None)
            hit = (known, tuple(_WORD.findall(piece)))
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
        )


def load_lexical(path: Path) -> LexicalHead:
    with np.load(path) as data:
        names = tuple(data["features"].tobytes().decode("utf-8").split("\n"))
        intercept, threshold = (float(x) for x in data["calibration"])
        return LexicalHead(
            names,
            data["idf"].astype(np.float32),
            data["coef"].astype(np.float32),
            intercept,
            threshold,
        )
