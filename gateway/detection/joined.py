"""Long benign texts joined from short ones.

The corpora's benign rows are short (7 words at the median, 42 at the 99th percentile), and a
detector that scores a text by its best run or window sees more of them in a long text: a
long request or document is made of such pieces (the latency benchmark's 512-token prompt is
built the same way). The lexical head trains on such texts (:func:`joined_benign`), the screen
sets its steps with length on them and the eval measures false positives on them
(:func:`benign_composites`).
"""

from __future__ import annotations

import random

from gateway.detection.datasets import Row

SEED = 13
"""As :data:`.train.SEED`: the texts are part of the seeded training."""


JOINED_LENGTHS = (32, 64, 128, 256, 512)
"""Lengths in words of the long benign texts the lexical head trains on (:func:`joined_benign`)."""
JOINED_EVERY = 40
"""One long benign text of each length per this many benign rows (219 of each for the 8,764
benign train rows): in proportion, so that a small corpus is not drowned in them."""


def joined_per_length(rows: list[Row]) -> int:
    """How many long benign texts of each length the lexical head trains on beside ``rows``."""
    return sum(1 for r in rows if r.label == 0) // JOINED_EVERY


BLOCKS = 40
"""Blocks of benign rows in :func:`joined_benign`: each block is one group of the out-of-fold
folds, so there must be many (one block would put every benign row in one fold)."""


def joined_benign(
    rows: list[Row], per_length: int, blocks: int = BLOCKS
) -> tuple[list[str], dict[int, int], list[int]]:
    """Long benign texts to train on: the benign ``rows`` in ``blocks`` seeded blocks, each
    block's rows joined into :func:`benign_composites` (``per_length`` of each of
    :data:`JOINED_LENGTHS` in all, shared out evenly between the blocks). Returns the texts,
    the group of each benign row (by index) and the group of each text: a block's rows and the
    texts made of them share a group, so no fold of the out-of-fold scores is fitted on a long
    text holding the row it scores. Groups are numbered from ``len(rows) + 10**6`` (clear of
    the row indices other texts use)."""
    benign = [i for i, r in enumerate(rows) if r.label == 0]
    if not per_length or not benign:
        return [], {}, []
    random.Random(SEED).shuffle(benign)
    parts = [benign[k::blocks] for k in range(min(blocks, len(benign)))]
    texts = [r.text for r in rows]
    joined: list[str] = []
    row_groups: dict[int, int] = {}
    joined_groups: list[int] = []
    for b, members in enumerate(parts):
        group = len(rows) + 10**6 + b
        row_groups |= dict.fromkeys(members, group)
        share = per_length // len(parts) + (b < per_length % len(parts))
        made = benign_composites(texts, members, SEED + b, JOINED_LENGTHS, share)
        for long_texts in made.values():
            joined += long_texts
            joined_groups += [group] * len(long_texts)
    return joined, row_groups, joined_groups


COMPOSITE_LENGTHS = (16, 32, 64, 128, 256, 512, 1024)
"""Lengths in words of the long benign texts the screen's steps are set on."""
COMPOSITES_PER_FOLD = 250


def benign_composites(
    texts: list[str],
    benign: list[int],
    seed: int,
    lengths: tuple[int, ...] = COMPOSITE_LENGTHS,
    per_length: int = COMPOSITES_PER_FOLD,
) -> dict[int, list[str]]:
    """Long benign texts: for each of ``lengths``, ``per_length`` texts of exactly that many
    words, each the texts ``benign`` (indices into ``texts``) drawn at random (seeded) and
    joined, cut at the length. A piece without final punctuation gets a full stop: many rows
    have none, and "... symptoms Our Christmas traditions" reads like no document (the suffix
    model flagged such seams)."""
    rng = random.Random(seed)
    out: dict[int, list[str]] = {}
    for length in lengths:
        made = []
        for _ in range(per_length if benign else 0):
            words: list[str] = []
            while len(words) < length:
                words += _sentence(texts[rng.choice(benign)]).split()
            made.append(" ".join(words[:length]))
        out[length] = made
    return out


def _sentence(text: str) -> str:
    """``text`` ending in punctuation (a full stop added when it has none)."""
    text = text.strip()
    return text if not text or text[-1] in _FINAL else text + "."


_FINAL = ".!?:;\"')]}>`*"
