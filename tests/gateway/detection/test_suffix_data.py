from __future__ import annotations

from gateway.detection import suffix_data


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
