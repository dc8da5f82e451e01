"""Canonical text for matching, and the smuggling signals found on the way.

The canonical form is: hidden characters removed (zero-width, bidi controls, Unicode tag
characters, variation selectors), NFKC, non-ASCII confusables folded to their ASCII look-alike
(Unicode TR39 data from ``confusable_homoglyphs``), case-folded, whitespace collapsed.

Characters a person cannot see are *signals*, reported with counts: tag characters outside an
emoji flag sequence carry hidden ASCII (decoded by :func:`tag_payload`), bidi controls can
reorder what a reviewer sees, zero-width characters inside words split trigger words.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f"
_BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
_TAG_LO, _TAG_HI = 0xE0000, 0xE007F
_BLACK_FLAG = "\U0001f3f4"

_HIDDEN = re.compile(
    f"[{_ZERO_WIDTH}{_BIDI}\ufe00-\ufe0f\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
_ZW_IN_WORD = re.compile(f"\\w[{_ZERO_WIDTH}]+\\w")
_BIDI_RX = re.compile(f"[{_BIDI}]")
_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Signals:
    """Counts of characters meant not to be seen."""

    tag_chars: int = 0
    """Unicode tag characters outside emoji flag sequences (ASCII smuggling)."""
    bidi: int = 0
    zero_width_in_words: int = 0
    confusables: int = 0
    """Non-ASCII letters folded to an ASCII look-alike inside otherwise-Latin words."""

    @property
    def any(self) -> bool:
        return bool(self.tag_chars or self.bidi or self.zero_width_in_words or self.confusables)


@cache
def _confusable_table() -> dict[int, str]:
    """Non-ASCII code point -> its single ASCII alphanumeric homoglyph (TR39 confusables)."""
    raw = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    table: dict[int, str] = {}
    for char, glyphs in json.loads(raw).items():
        if len(char) != 1 or ord(char) < 128:
            continue
        options = [g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii()]
        options = [c for c in options if c.isalnum()]
        # Prefer a look-alike of the same case (Cyrillic capital I -> "I", not "l").
        same_case = [c for c in options if c.isalpha() and c.isupper() == char.isupper()]
        if same_case or options:
            choice = (same_case or options)[0]
            # TR39 skeletons map capital I-like letters to 'l'; the reader sees an 'I'.
            table[ord(char)] = "I" if choice == "l" and char.isupper() else choice
    return table


def _flag_tags(text: str) -> int:
    """How many tag characters belong to emoji subdivision flags (legitimate)."""
    count = 0
    for m in _TAG_RUN.finditer(text):
        if m.start() > 0 and text[m.start() - 1] == _BLACK_FLAG and len(m.group()) <= 8:
            count += len(m.group())
    return count


def tag_payload(text: str) -> str:
    """The ASCII hidden in tag characters (U+E0020..U+E007E map to ' '..'~'), flags excluded."""
    out: list[str] = []
    for m in _TAG_RUN.finditer(text):
        if m.start() > 0 and text[m.start() - 1] == _BLACK_FLAG and len(m.group()) <= 8:
            continue
        out.extend(chr(ord(c) - _TAG_LO) for c in m.group() if 0x20 <= ord(c) - _TAG_LO <= 0x7E)
    return "".join(out)


def _look_alike(char: str, table: dict[int, str]) -> bool:
    """A non-ASCII character folded to an ASCII look-alike that is not a letter of living
    Latin-script orthographies (Latin-1 Supplement and Latin Extended-A, U+00C0-U+017F, written
    beside ASCII letters by the languages that use them: Turkish and Azerbaijani dotless i,
    U+0131, is in the confusables table, and counting it blocked ordinary Turkish messages as
    smuggling). Those letters are still folded for matching."""
    if char.isascii() or ord(char) not in table:
        return False
    return not ("\u00c0" <= char <= "\u017f" and char.isalpha())


def signals(text: str) -> Signals:
    if text.isascii():
        return Signals()
    tags = sum(1 for c in text if _TAG_LO <= ord(c) <= _TAG_HI) - _flag_tags(text)
    table = _confusable_table()
    confusables = 0
    for word in text.split():
        if word.isascii():
            continue
        ascii_letters = sum(1 for c in word if c.isascii() and c.isalpha())
        folded = sum(1 for c in word if _look_alike(c, table))
        if ascii_letters and folded:
            confusables += folded
    return Signals(
        tag_chars=max(tags, 0),
        bidi=len(_BIDI_RX.findall(text)),
        zero_width_in_words=len(_ZW_IN_WORD.findall(text)),
        confusables=confusables,
    )


def canonical(text: str) -> str:
    """The form signatures match against; see the module docstring."""
    if not text.isascii():
        text = _HIDDEN.sub("", text)
        text = unicodedata.normalize("NFKC", text)
        if not text.isascii():
            text = text.translate(_confusable_table())
    return _SPACE.sub(" ", text).casefold().strip()
