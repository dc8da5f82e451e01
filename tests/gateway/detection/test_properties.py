"""Property tests: the normaliser and the decoders never crash and stay fast on hostile input.

Inputs are built from the characters the regexes care about (base64 and hex alphabets, ``%``,
``\\x``, separators, tag, zero-width and bidi characters, flags), repeated up to the 20,000
characters :mod:`gateway.detection.views` decodes. Time is bounded with hypothesis deadlines
(per example, re-checked by hypothesis before it reports), not with timed asserts: a regex that
backtracks quadratically takes seconds on 20,000 characters and fails them.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.detection.decoders import DECODERS
from gateway.detection.normalise import canonical, signals, tag_payload
from gateway.detection.views import MAX_DECODE_CHARS, MAX_VIEWS, analyse

UNITS = [
    "a",
    "Z",
    "0",
    "9",
    "f",
    "+",
    "/",
    "_",
    "-",
    "=",
    "==",
    " ",
    ":",
    "\n",
    "%",
    "%4",
    "%41",
    "\\x",
    "\\x4",
    "\\x41",
    "@",
    "$",
    "|",
    "!",
    "1",
    "3",
    "\u200b",  # zero-width space
    "\u200d",
    "\u202e",  # right-to-left override
    "\ufe0f",
    "\U000e0041",  # tag 'A'
    "\U000e007f",  # cancel tag
    "\U0001f3f4",  # black flag (starts subdivision flags)
    "\u0430",  # Cyrillic a (confusable)
    "\uff41",  # full-width a
    "\ufdfa",  # NFKC expands it to 18 characters
    "\u00df",  # casefolds to 'ss'
]
PIECE = st.lists(st.sampled_from(UNITS) | st.text(max_size=3), min_size=1, max_size=6).map("".join)
HOSTILE = st.builds(
    lambda piece, n: (piece * n)[:MAX_DECODE_CHARS],
    PIECE,
    st.integers(min_value=1, max_value=MAX_DECODE_CHARS),
)
TEXT = HOSTILE | st.text(max_size=2_000)
HIDDEN = {"\u200b", "\u200d", "\u202e", "\ufe0f"} | {chr(c) for c in range(0xE0000, 0xE0080)}
BOUNDED = settings(
    max_examples=60,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

canonical("warm up \u0430")  # loads the confusables table once, outside any deadline


@BOUNDED
@given(TEXT)
def test_canonical_is_clean_and_bounded(text: str) -> None:
    out = canonical(text)
    assert isinstance(out, str)
    assert not HIDDEN & set(out)
    assert out == out.strip() and "  " not in out


@BOUNDED
@given(TEXT)
def test_signals_count_only_what_is_there(text: str) -> None:
    found = signals(text)
    tags = sum(1 for c in text if 0xE0000 <= ord(c) <= 0xE007F)
    assert 0 <= found.tag_chars <= tags
    assert 0 <= found.bidi <= len(text) and 0 <= found.zero_width_in_words <= len(text)
    assert 0 <= found.confusables <= len(text)
    assert found.any == bool(
        found.tag_chars or found.bidi or found.zero_width_in_words or found.confusables
    )


@BOUNDED
@given(TEXT)
def test_tag_payload_is_printable_ascii_from_tags_only(text: str) -> None:
    payload = tag_payload(text)
    assert payload.isascii() and payload.isprintable()
    assert len(payload) <= sum(1 for c in text if 0xE0000 <= ord(c) <= 0xE007F)


@BOUNDED
@given(st.sampled_from(sorted(DECODERS)), TEXT)
def test_every_decoder_returns_text_or_none_quickly(name: str, text: str) -> None:
    out = DECODERS[name](text)
    assert out is None or (isinstance(out, str) and out != text)


@BOUNDED
@given(HOSTILE)
def test_analyse_is_bounded_in_views_and_depth(text: str) -> None:
    analyse.cache_clear()
    result = analyse(text)
    assert 1 <= len(result.views) <= MAX_VIEWS
    assert result.views[0].via == () and result.views[0].raw == text
    assert all(len(v.via) <= 3 for v in result.views)
    assert all(v.text == canonical(v.raw) for v in result.views)
    assert len({v.text for v in result.views}) == len(result.views)
