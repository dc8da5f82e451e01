"""Long benign texts joined from short ones: exactly their length, made of the given benign
texts only, seeded; the training texts grouped with the rows they are made of."""

from __future__ import annotations

from collections import Counter

from gateway.detection.datasets import Row
from gateway.detection.joined import (
    COMPOSITE_LENGTHS,
    COMPOSITES_PER_FOLD,
    JOINED_LENGTHS,
    benign_composites,
    joined_benign,
)


def test_benign_composites_are_the_given_texts_joined_and_cut_at_each_length() -> None:
    texts = [f"benign{i} words here" for i in range(10)] + ["attack text never used"]
    made = benign_composites(texts, list(range(10)), seed=1)
    assert sorted(made) == list(COMPOSITE_LENGTHS)
    for length, composites in made.items():
        assert len(composites) == COMPOSITES_PER_FOLD
        assert all(len(t.split()) == length for t in composites)
        assert not any("attack" in t for t in composites)
        assert not any("here benign" in t for t in composites)  # "here. benign": sentences
    assert made == benign_composites(texts, list(range(10)), seed=1)  # seeded
    assert benign_composites(texts, [], seed=1) == {n: [] for n in COMPOSITE_LENGTHS}


def test_joined_benign_texts_share_a_group_with_the_rows_they_are_made_of() -> None:
    rows = [Row(f"benign{i} words", 0, "s", "benign", "train") for i in range(50)]
    rows += [Row(f"attack{i} words", 1, "s", "override", "train") for i in range(5)]
    texts, row_groups, groups = joined_benign(rows, per_length=4, blocks=3)
    assert sorted(row_groups) == list(range(50))  # every benign row, no attack
    assert sorted(Counter(row_groups.values()).values()) == [16, 17, 17]
    assert len(texts) == len(groups) == 4 * len(JOINED_LENGTHS)  # 2 + 1 + 1 a length
    for text, group in zip(texts, groups, strict=True):
        assert "attack" not in text
        pieces = {int(w[len("benign") :]) for w in text.split() if w.startswith("benign")}
        assert {row_groups[i] for i in pieces} == {group}  # made of its own block's rows only
    assert min(groups) > len(rows)  # clear of the row indices
    assert joined_benign(rows, per_length=0) == ([], {}, [])
