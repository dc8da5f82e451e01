"""Near-duplicate removal with MinHash LSH (``datasketch``) over character 5-shingles of the
normalised text (case-folded, whitespace collapsed). Characters rather than words, so two
different encoded payloads (one base64 "word" each) inside the same wrapper are not taken for
duplicates. The first of a group is kept, so originals
listed before their mutations survive, and a prompt that nearly repeats one in another family
is dropped rather than leaking across the family split."""

from __future__ import annotations

import re
from collections.abc import Sequence

from datasketch import MinHash, MinHashLSH

from finetune.records import Prompt

_SPACE = re.compile(r"\s+")


def shingles(text: str, n: int = 5) -> set[bytes]:
    norm = _SPACE.sub(" ", text.casefold()).strip()
    if len(norm) <= n:
        return {norm.encode()}
    return {norm[i : i + n].encode() for i in range(len(norm) - n + 1)}


def signature(text: str, num_perm: int) -> MinHash:
    m = MinHash(num_perm=num_perm, seed=1)
    m.update_batch(list(shingles(text)))
    return m


def near_unique(
    prompts: Sequence[Prompt], *, threshold: float = 0.8, num_perm: int = 128
) -> tuple[list[Prompt], int]:
    """Prompts whose estimated Jaccard similarity to every earlier kept one is below
    ``threshold``; and how many were dropped."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: list[Prompt] = []
    for i, p in enumerate(prompts):
        sig = signature(p.text, num_perm)
        if lsh.query(sig):
            continue
        lsh.insert(str(i), sig)
        kept.append(p)
    return kept, len(prompts) - len(kept)
