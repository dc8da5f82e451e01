"""Open detectors we compare against, each loaded from the weights inside its PyPI wheel.

Only ``gateway eval detection`` uses them (they come with the ``dev`` extra). Each peer is
a name mapped to a loader returning ``text -> is_attack``; an unknown name fails listing the
known ones.

* ``metatronnanoguard`` 0.1.0 (MIT): a 16.8M-parameter transformer classifier (torch).
* ``prompt-guardrail`` 1.0.1 (Apache-2.0, import name ``guardify``): TF-IDF + logistic
  regression.

Both were trained on public prompt-injection sets that may overlap with our test rows, which
can only flatter them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

Detector = Callable[[str], bool]


def _nanoguard() -> Detector:
    from nanoguard import NanoGuard

    guard: Any = NanoGuard(device="cpu")

    def detect(text: str) -> bool:
        return bool(guard.scan(text).is_injection)

    return detect


def _prompt_guardrail() -> Detector:
    with warnings.catch_warnings():  # its pickles come from an older scikit-learn
        warnings.simplefilter("ignore")
        from guardify import detect as guardify_detect

        guardify_detect("warm up")

    def detect(text: str) -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result: dict[str, Any] = guardify_detect(text)
        return bool(result["label"] == "injection")

    return detect


PEERS: dict[str, Callable[[], Detector]] = {
    "metatronnanoguard": _nanoguard,
    "prompt-guardrail": _prompt_guardrail,
}


def load_peer(name: str) -> Detector:
    try:
        loader = PEERS[name]
    except KeyError:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(sorted(PEERS))}") from None
    return loader()
