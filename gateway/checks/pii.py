"""``pii``: personal data in texts: emails, phone numbers, payment cards, IBANs, US SSNs.

Runs locally, with no model and no network. Candidates are found by pattern and then *validated*
with well-kept libraries, so look-alike digit strings do not fire:

- phone numbers: Google's libphonenumber (``phonenumbers``), valid numbers only, for the regions
  in ``phone_regions`` (numbers written with ``+`` are found whatever the region);
- payment cards: 13-19 digits (spaces or dashes allowed) passing the Luhn checksum
  (``stdnum.luhn``);
- IBANs: country code, check digits and per-country length, mod-97 (``stdnum.iban``);
- SSNs: ``123-45-6789`` shape with the issuing rules (``stdnum.us.ssn``: no 000/666/9xx area,
  no 00 group, no 0000 serial);
- emails: a plain address pattern.

Every match is masked by its type (``<EMAIL>``, ``<PHONE>``, ...), so ``redact`` is the natural
action; the masked texts ride along with ``block`` and ``flag`` verdicts too (the pipeline uses
them only for ``redact``). Findings name the entity types and counts, never the values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import phonenumbers
from pydantic import Field, field_validator
from stdnum import iban, luhn
from stdnum.us import ssn

from gateway.checks import register
from gateway.checks.roles import RoleScoped
from gateway.checks.spans import count_kinds, mask, masking_verdict, non_overlapping
from gateway.openai_api import Segment
from gateway.pipeline import Action, CheckContext, Finding, Verdict

Entity = Literal["email", "phone", "credit_card", "iban", "ssn"]
ALL_ENTITIES: tuple[Entity, ...] = ("credit_card", "iban", "ssn", "email", "phone")
"""Also the priority order when two matches overlap: the more specific type wins."""

MASKS: dict[Entity, str] = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "credit_card": "<CREDIT_CARD>",
    "iban": "<IBAN>",
    "ssn": "<SSN>",
}

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,9}\b")
_SSN = re.compile(r"(?<![\d-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d-])")

Span = tuple[int, int]


def _emails(text: str, regions: Sequence[str]) -> Iterator[Span]:
    for m in _EMAIL.finditer(text):
        yield m.span()


def _cards(text: str, regions: Sequence[str]) -> Iterator[Span]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
            yield m.span()


def _ibans(text: str, regions: Sequence[str]) -> Iterator[Span]:
    for m in _IBAN.finditer(text):
        # The pattern may run into a following word in capitals: try shorter ends too.
        groups = m.group(0).split(" ")
        for n in range(len(groups), 0, -1):
            candidate = " ".join(groups[:n])
            if len(candidate.replace(" ", "")) >= 15 and iban.is_valid(candidate):
                yield m.start(), m.start() + len(candidate)
                break


def _ssns(text: str, regions: Sequence[str]) -> Iterator[Span]:
    for m in _SSN.finditer(text):
        if ssn.is_valid(re.sub(r"[ -]", "", m.group(0))):
            yield m.span()


def _phones(text: str, regions: Sequence[str]) -> Iterator[Span]:
    for region in regions:
        for m in phonenumbers.PhoneNumberMatcher(text, region):
            yield m.start, m.end


_FINDERS: dict[Entity, Callable[[str, Sequence[str]], Iterator[Span]]] = {
    "email": _emails,
    "phone": _phones,
    "credit_card": _cards,
    "iban": _ibans,
    "ssn": _ssns,
}


def find_pii(
    text: str, entities: Sequence[Entity] = ALL_ENTITIES, regions: Sequence[str] = ("US",)
) -> list[tuple[Entity, int, int]]:
    """Non-overlapping (entity, start, end) matches, in text order."""
    return non_overlapping(
        (entity, start, end)
        for entity in ALL_ENTITIES
        if entity in entities
        for start, end in _FINDERS[entity](text, regions)
    )


def mask_pii(text: str, matches: Sequence[tuple[Entity, int, int]]) -> str:
    return mask(text, matches, MASKS.__getitem__)


@register("pii")
class PII:
    class Settings(RoleScoped):
        entities: list[Entity] = Field(
            default_factory=lambda: list(ALL_ENTITIES), min_length=1, description="what to find"
        )
        phone_regions: list[str] = Field(
            default_factory=lambda: ["US"],
            description="ISO 3166 regions for numbers written without '+' (e.g. US, GB, DE)",
        )
        action: Action = Action.REDACT

        @field_validator("phone_regions")
        @classmethod
        def _known_regions(cls, v: list[str]) -> list[str]:
            unknown = [r for r in v if r not in phonenumbers.SUPPORTED_REGIONS]
            if unknown:
                raise ValueError(f"unknown phone region(s): {', '.join(unknown)}")
            return v

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        s = self.settings
        return masking_verdict(
            s.scanned(segments),
            lambda text: find_pii(text, s.entities, s.phone_regions),
            mask_pii,
            lambda i, matches: Finding(
                "pii", f"personal data found: {count_kinds(matches)}", "pii", 1.0, i
            ),
            s.action,
        )
