"""Matched spans of a text, shared by the checks that find and mask things (pii, secrets)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=str)


def non_overlapping(candidates: Iterable[tuple[K, int, int]]) -> list[tuple[K, int, int]]:
    """(kind, start, end) candidates kept unless they overlap an earlier one, in text order."""
    taken: list[tuple[K, int, int]] = []
    for kind, start, end in candidates:
        if all(end <= s or start >= e for _, s, e in taken):
            taken.append((kind, start, end))
    return sorted(taken, key=lambda t: t[1])


def mask(text: str, matches: Sequence[tuple[K, int, int]], mask_for: Callable[[K], str]) -> str:
    """``text`` with each non-overlapping, ordered match replaced by ``mask_for(kind)``."""
    out, last = [], 0
    for kind, start, end in matches:
        out.append(text[last:start])
        out.append(mask_for(kind))
        last = end
    out.append(text[last:])
    return "".join(out)


def count_kinds(matches: Sequence[tuple[K, int, int]]) -> str:
    """How many matches of each kind, kinds sorted: ``"2 email, 1 phone"``."""
    kinds = [kind for kind, _, _ in matches]
    return ", ".join(f"{kinds.count(k)} {k}" for k in sorted(set(kinds)))
