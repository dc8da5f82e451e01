"""Decoders for smuggled payloads: a registry of small functions ``str -> str | None``.

Each decoder returns the text with its encoded spans decoded, or None when nothing decoded to
readable text. Decoders are conservative (a decoded span must be mostly printable text; ROT13
must make the text *more* English), so ordinary traffic rarely produces extra views.
Bounded: every regex is linear, inputs are capped by the caller (:mod:`.views`).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import urllib.parse
from collections.abc import Callable

from gateway.detection.normalise import tag_payload

Decoder = Callable[[str], str | None]
DECODERS: dict[str, Decoder] = {}

_B64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(
    r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{16,}(?![0-9A-Fa-f])"
    r"|(?<![0-9A-Fa-f][ :])(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :]){7,}[0-9A-Fa-f]{2}(?![0-9A-Fa-f])"
)
_HEX_ESC = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){4,}")
_URL = re.compile(r"%[0-9A-Fa-f]{2}")
_WORD = re.compile(r"[a-z]+")
_LEET_TOKEN = re.compile(r"\S+")
_LEET_CHARS = re.compile(r"[A-Za-z][0-9@$|]|[0-9@$|][A-Za-z]")
# A word that is leetspeak for sure: up to 24 characters with leet characters between letters
# ("h4ck", "pr0mpt", "pa$$word", Greek alpha + "1l"), a digit before three letters ("1gnore")
# or a symbol before two ("@ll", "|nstructions"). Times, units, ordinals and versions ("10pm",
# "9am", "3rd", "64bit", "gpt4", "mp3") are not. Letters are Unicode letters, so look-alikes
# count. One match per word: the lookbehind anchors every match at a word's start, so the scan
# stays linear.
_L = r"[^\W\d_]"
_LEET_WORD = re.compile(
    r"(?<!\S)(?=\S{1,24}(?!\S))"
    rf"(?:\S*?{_L}[0-9@$|]+{_L}|[^\w\s@$|]*(?:[0-9]{_L}{{3}}|[@$|]{_L}{{2}}))"
)
_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "@": "a",
        "$": "s",
        "|": "l",
        "!": "i",
        "8": "b",
        "9": "g",
    }
)
# Common English words: ROT13 is accepted only when it makes the text more English.
_COMMON = frozenset(
    [
        "the",
        "be",
        "to",
        "of",
        "and",
        "a",
        "in",
        "that",
        "have",
        "i",
        "it",
        "for",
        "not",
        "on",
        "with",
        "he",
        "as",
        "you",
        "do",
        "at",
        "this",
        "but",
        "his",
        "by",
        "from",
        "they",
        "we",
        "say",
        "her",
        "she",
        "or",
        "an",
        "will",
        "my",
        "one",
        "all",
        "would",
        "there",
        "their",
        "what",
        "so",
        "up",
        "out",
        "if",
        "about",
        "who",
        "get",
        "which",
        "go",
        "me",
        "when",
        "make",
        "can",
        "like",
        "time",
        "no",
        "just",
        "him",
        "know",
        "take",
        "people",
        "into",
        "your",
        "good",
        "some",
        "could",
        "them",
        "see",
        "other",
        "than",
        "then",
        "now",
        "look",
        "only",
        "come",
        "its",
        "over",
        "think",
        "also",
        "back",
        "after",
        "use",
        "two",
        "how",
        "our",
        "work",
        "first",
        "well",
        "way",
        "even",
        "new",
        "want",
        "because",
        "any",
        "these",
        "give",
        "day",
        "most",
        "us",
        "is",
        "are",
        "was",
        "ignore",
        "previous",
        "instructions",
        "system",
        "prompt",
        "tell",
        "reveal",
        "rules",
        "secret",
        "password",
        "forget",
    ]
)


def register(name: str) -> Callable[[Decoder], Decoder]:
    def decorator(fn: Decoder) -> Decoder:
        DECODERS[name] = fn
        return fn

    return decorator


def _printable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text:
        return None
    good = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    letters = sum(1 for c in text if c.isalpha())
    if good / len(text) < 0.95 or letters / len(text) < 0.5:
        return None
    return text


def _sub_spans(text: str, rx: re.Pattern[str], decode: Callable[[str], str | None]) -> str | None:
    changed = False

    def repl(m: re.Match[str]) -> str:
        nonlocal changed
        out = decode(m.group(0))
        if out is None:
            return m.group(0)
        changed = True
        return out

    result = rx.sub(repl, text)
    return result if changed else None


def _b64(span: str) -> str | None:
    s = span.rstrip("=")
    s = s + "=" * (-len(s) % 4)
    try:
        raw = base64.b64decode(s.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _printable(raw)


def _hex(span: str) -> str | None:
    digits = re.sub(r"[^0-9A-Fa-f]", "", span)
    if len(digits) % 2:
        return None
    return _printable(bytes.fromhex(digits))


def englishness(text: str) -> float:
    words = _WORD.findall(text.lower())
    if not words:
        return 0.0
    return sum(1 for w in words if w in _COMMON) / len(words)


@register("base64")
def decode_base64(text: str) -> str | None:
    return _sub_spans(text, _B64, _b64)


@register("hex")
def decode_hex(text: str) -> str | None:
    out = _sub_spans(text, _HEX, _hex)
    return _sub_spans(out or text, _HEX_ESC, _hex) or out


@register("url")
def decode_url(text: str) -> str | None:
    if not _URL.search(text):
        return None
    out = urllib.parse.unquote(text, errors="replace")
    return out if out != text else None


@register("rot13")
def decode_rot13(text: str) -> str | None:
    """The whole text, when ROT13 makes it more English; otherwise the run of words that ROT13
    makes most English, decoded in place (benign words around a ROT13 payload must not hide it)."""
    out = codecs.encode(text, "rot13")
    before, after = englishness(text), englishness(out)
    if after >= 0.2 and after > before + 0.1:
        return out
    return _rot13_run(text, out)


def _rot13_run(text: str, rot13: str) -> str | None:
    """Decodes the run of words with the most words that become common English under ROT13 (less
    those that stop being common), widened over neighbours neither common before nor after;
    ``None`` unless it gains at least two common words. ``rot13`` is the whole text's ROT13,
    character for character: a word's ROT13 is the same slice of it."""
    words = [m.span() for m in re.finditer(r"\S+", text)]
    if len(words) < 2:
        return None
    gain = [_common_gain(text[a:b], rot13[a:b]) for a, b in words]
    best, best_at, run, start = 0, (0, 0), 0, 0
    for i, g in enumerate(gain):
        if run <= 0:
            run, start = 0, i
        run += g
        if run > best:
            best, best_at = run, (start, i + 1)
    if best < 2:
        return None
    lo, hi = best_at
    while lo > 0 and gain[lo - 1] == 0:
        lo -= 1
    while hi < len(words) and gain[hi] == 0:
        hi += 1
    a, b = words[lo][0], words[hi - 1][1]
    return text[:a] + rot13[a:b] + text[b:]


def _common_gain(word: str, rot13: str) -> int:
    """+1 if ROT13 turns a word into a common English word, -1 if it turns one into a word that
    is not, else 0."""
    return int(englishness(rot13) > 0) - int(englishness(word) > 0)


def _leety(token: str) -> bool:
    letters = sum(1 for c in token if c.isalpha())
    return len(token) <= 24 and letters >= 2 and bool(_LEET_CHARS.search(token))


@register("leetspeak")
def decode_leet(text: str) -> str | None:
    """Needs two or more words that are leetspeak for sure (``_LEET_WORD``), so 'room 4B',
    'gpt4' or 'from 9am to 10pm' decode nothing; then every leet-looking word is translated
    ('4ll', 'th3' too)."""
    if not _LEET_CHARS.search(text) or len(_LEET_WORD.findall(text)) < 2:
        return None
    out = _LEET_TOKEN.sub(
        lambda m: m.group(0).translate(_LEET) if _leety(m.group(0)) else m.group(0), text
    )
    return out if out != text else None


# Letter-spaced text: four or more letters, each followed by the same separator ("i g n o r e",
# "R-e-v-e-a-l", "d_i_s_c_l_o_s_e"), or four or more characters each followed by a backslash
# ("\I\ \h\a\v\e": a space between backslashes is a word break). "U.S." (two letters),
# "1.2.3.4" (digits) and "a/b" are not runs.
_SPACED = re.compile(rf"(?<!{_L}){_L}(?P<sep>[ .\-_*|/+~]){_L}(?:(?P=sep){_L}){{2,}}(?!{_L})")
_BACKSLASHED = re.compile(r"(?:[^\\\n]\\){4,}")


def _unbackslashed(span: str) -> str | None:
    text = span.replace("\\", "")
    return text if sum(c.isalpha() for c in text) >= 3 else None


@register("spaced")
def decode_spaced(text: str) -> str | None:
    """Each letter-spaced run with its separators dropped ("i g n o r e" -> "ignore")."""
    out = _SPACED.sub(lambda run: run.group(0).replace(run.group("sep"), ""), text)
    out = _sub_spans(out, _BACKSLASHED, _unbackslashed) or out
    return out if out != text else None


@register("tag_chars")
def decode_tags(text: str) -> str | None:
    return tag_payload(text) or None
