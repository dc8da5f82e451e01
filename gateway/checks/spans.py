"""Matched spans of a text, shared by the checks that find and mask things (pii, secrets)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from gateway.openai_api import Segment
from gateway.pipeline import Action, Finding, Verdict

K = TypeVar("K", bound=str)
Matches = Sequence[tuple[K, int, int]]


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


def masking_verdict(
    scanned: Iterable[tuple[int, Segment]],
    find: Callable[[str], Matches[K]],
    mask_matches: Callable[[str, Matches[K]], str],
    finding: Callable[[int, Matches[K]], Finding],
    action: Action,
) -> Verdict:
    """The verdict of a check that finds things and masks them: one finding per segment with
    matches (``finding(index, matches)``), that segment's masked text as its redaction, and
    ``action``; allow when nothing matched."""
    findings: list[Finding] = []
    redactions: dict[int, str] = {}
    for i, seg in scanned:
        matches = find(seg.text)
        if matches:
            redactions[i] = mask_matches(seg.text, matches)
            findings.append(finding(i, matches))
    if not findings:
        return Verdict.allow()
    return Verdict(action, tuple(findings), redactions)
