"""Every form of a text the later layers must see: original, canonical and decoded (nested).

``views(text)`` is cached (LRU on the text) so the signature, semantic and suffix checks of one
request share the work. Decoding is breadth-first up to ``MAX_DEPTH`` levels and ``MAX_VIEWS``
views; only the first ``MAX_DECODE_CHARS`` characters are decoded, so time is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from gateway.detection.decoders import DECODERS
from gateway.detection.normalise import Signals, canonical, signals

MAX_DEPTH = 3
MAX_VIEWS = 12
MAX_DECODE_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class View:
    text: str
    """The canonical form of this view (what signatures match)."""
    raw: str
    """The view before canonicalisation (what the semantic layer embeds)."""
    via: tuple[str, ...] = ()
    """Decoders applied, outermost first; () for the original."""

    @property
    def decoded(self) -> bool:
        return bool(self.via)

    @property
    def label(self) -> str:
        return "+".join(self.via) or "original"


@dataclass(frozen=True, slots=True)
class Analysed:
    views: tuple[View, ...]
    signals: Signals


@lru_cache(maxsize=512)
def analyse(text: str) -> Analysed:
    original = View(canonical(text), text)
    out = [original]
    seen = {original.text}
    frontier = [original]
    for _ in range(MAX_DEPTH):
        nxt: list[View] = []
        for view in frontier:
            source = view.raw[:MAX_DECODE_CHARS]
            for name, decode in DECODERS.items():
                if len(out) >= MAX_VIEWS:
                    break
                decoded = decode(source)
                if decoded is None:
                    continue
                new = View(canonical(decoded), decoded, (*view.via, name))
                if new.text in seen or not new.text:
                    continue
                seen.add(new.text)
                out.append(new)
                nxt.append(new)
        frontier = nxt
        if not frontier:
            break
    return Analysed(tuple(out), signals(text))
