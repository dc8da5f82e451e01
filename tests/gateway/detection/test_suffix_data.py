from __future__ import annotations

import zipfile
from pathlib import Path

from gateway.detection import suffix_data
from gateway.detection.datasets import WHEELS


def test_stdlib_code_splits_by_module_and_never_overlaps() -> None:
    train, test = suffix_data.stdlib_code("train"), suffix_data.stdlib_code("test")
    assert len(train) > 3 * len(test) > 0
    assert not set(train) & set(test)
    assert all(len(c) == suffix_data.CHUNK for c in train + test)
    assert suffix_data.stdlib_code("test") == test


def test_identifiers_are_deterministic_per_seed() -> None:
    assert suffix_data.identifiers(20, 1) == suffix_data.identifiers(20, 1)
    assert suffix_data.identifiers(20, 1) != suffix_data.identifiers(20, 2)


def test_token_suffixes_draw_from_the_given_pieces() -> None:
    pieces = ["ab", " Cd", "]("]
    suffixes = suffix_data.token_suffixes(50, 3, pieces)
    assert len(suffixes) == 50
    for s in suffixes:
        rest = s
        while rest:
            head = next(p for p in [*pieces, " !"] if rest.startswith(p))
            rest = rest[len(head) :]


def test_bpe_pieces_come_from_the_smollm2_tokenizer() -> None:
    pieces = suffix_data.bpe_pieces()
    assert len(pieces) > 40_000
    assert " the" in pieces
    assert all(p.isascii() and p.isprintable() for p in pieces)


def _po(header_language: str, *messages: str) -> str:
    header = (
        'msgid ""\nmsgstr ""\n"Project-Id-Version: django\\n"\n'
        f'"Language: {header_language}\\n"\n\n'
    )
    return header + "".join(f'msgid "m{i}"\nmsgstr {m}\n\n' for i, m in enumerate(messages))


def test_translations_come_from_the_django_wheel_split_by_language(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / f"django-{WHEELS['django']}-py3-none-any.whl", "w") as zf:
        for lang in ("de", "fr", "tr", "pl", "cs", "es", "it", "nl", "en", "en_GB"):
            long = f'"Bitte ({lang}) geben Sie einen gültigen Wert für %(field)s ein, danke."'
            core = _po(lang, long, '""\n"Zweite "\n"Zeile {name}"', '""')
            zf.writestr(f"django/conf/locale/{lang}/LC_MESSAGES/django.po", core)
            admin = _po(lang, *[long] * 8)
            zf.writestr(f"django/contrib/admin/locale/{lang}/LC_MESSAGES/django.po", admin)
    train = suffix_data.translations("train", tmp_path)
    test = suffix_data.translations("test", tmp_path)
    assert train and test and not set(train) & set(test)
    text = " ".join(train + test)
    assert "Project-Id-Version" not in text  # the header entry
    assert "%(field)s" not in text and "{name}" not in text  # placeholders dropped
    assert "Zweite Zeile" in text  # continued lines joined
    assert all(len(chunk) >= suffix_data.CHUNK for chunk in train + test)
    assert "(en)" not in text and "(en_GB)" not in text  # English is left out
    for lang in ("de", "fr", "tr", "pl", "cs", "es", "it", "nl"):
        chunks = train if suffix_data.split_of_module(lang) == "train" else test
        assert any(f"({lang})" in chunk for chunk in chunks), lang
