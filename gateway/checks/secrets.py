"""``secrets``: credentials in texts: cloud keys, tokens, private keys, keyword-marked secrets.

Each detector is a vendor-published token format (AWS, GitHub, OpenAI-style ``sk-``, Slack,
Google API keys, PEM private key blocks) plus one generic detector: a token of 16+ characters
right after a keyword (``api_key``, ``secret``, ``token``, ``password``, ``bearer`` ...) whose
Shannon entropy reaches ``min_entropy`` bits per character, so ``password: hunter2`` does not
fire but ``api_key=Zx9qT2mW8vLk4PjR7sYb`` does.

Why not Yelp's ``detect-secrets``: it is built to scan source lines, returns secret values
rather than spans, its ad-hoc ``scan_line`` ignores entropy limits (every word fires) and its
GitHub detector reports only the token's prefix; masking prose needs exact spans.

Matches are masked as ``<SECRET>``; the default action is ``block``. Findings name the
detectors, never the values.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Literal, get_args

from pydantic import Field

from gateway.checks import register
from gateway.checks.roles import RoleScoped
from gateway.checks.spans import mask, masking_verdict, non_overlapping
from gateway.openai_api import Segment
from gateway.pipeline import Action, CheckContext, Finding, Verdict

Detector = Literal[
    "private_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "github_token",
    "openai_key",
    "slack_token",
    "google_api_key",
    "keyword_high_entropy",
]
ALL_DETECTORS: tuple[Detector, ...] = get_args(Detector)
MASK = "<SECRET>"

_PATTERNS: dict[Detector, re.Pattern[str]] = {
    # A block cut short (a window of a stream, a truncated paste) is masked to the end.
    "private_key": re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r".*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        re.DOTALL,
    ),
    "aws_access_key_id": re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    "aws_secret_access_key": re.compile(
        r"(?i:aws_?secret_?access_?key|aws_?secret)[\"']?\s*[:=]\s*[\"']?"
        r"(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
    ),
    "github_token": re.compile(
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})(?![A-Za-z0-9_])"
    ),
    "openai_key": re.compile(r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_]{20,}(?![A-Za-z0-9_-])"),
    "slack_token": re.compile(r"\bxox[abposr]-(?:[A-Za-z0-9]+-){1,3}[A-Za-z0-9]+\b"),
    "google_api_key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    "keyword_high_entropy": re.compile(
        r"(?i:\b(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|token"
        r"|passw(?:or)?d|pwd|credentials?|bearer|private[_-]?key|client[_-]?secret))"
        r"[\"']?\s*(?:[:=]|=>|\bis\b)?\s*[\"']?"
        r"(?P<secret>[\w\-+/=.~!@#$%^&*?]{16,})"
    ),
}


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``'s own character distribution."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def find_secrets(
    text: str, detectors: Sequence[Detector] = ALL_DETECTORS, min_entropy: float = 3.5
) -> list[tuple[Detector, int, int]]:
    """Non-overlapping (detector, start, end) matches, in text order."""
    return non_overlapping(
        (name, start, end)
        for name in ALL_DETECTORS
        if name in detectors
        for start, end in _spans(name, text, min_entropy)
    )


def _spans(name: Detector, text: str, min_entropy: float) -> Iterator[tuple[int, int]]:
    for m in _PATTERNS[name].finditer(text):
        group = "secret" if "secret" in m.re.groupindex else 0
        start, end = m.span(group)
        if name == "keyword_high_entropy":
            value = m.group(group).rstrip(".,!?")  # sentence punctuation is not the secret
            end = start + len(value)
            if len(value) < 16 or shannon_entropy(value) < min_entropy:
                continue
        yield start, end


def mask_secrets(text: str, matches: Sequence[tuple[Detector, int, int]]) -> str:
    return mask(text, matches, lambda _: MASK)


@register("secrets")
class Secrets:
    class Settings(RoleScoped):
        detectors: list[Detector] = Field(default_factory=lambda: list(ALL_DETECTORS), min_length=1)
        min_entropy: float = Field(
            3.5, ge=0, le=8, description="bits/char a keyword-marked token needs to count"
        )
        action: Action = Action.BLOCK

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        s = self.settings
        return masking_verdict(
            s.scanned(segments),
            lambda text: find_secrets(text, s.detectors, s.min_entropy),
            mask_secrets,
            lambda i, matches: Finding(
                "secrets", f"credential found: {_kinds(matches)}", "secret", 1.0, i
            ),
            s.action,
        )


def _kinds(matches: Sequence[tuple[Detector, int, int]]) -> str:
    return ", ".join(sorted({name for name, _, _ in matches}))
