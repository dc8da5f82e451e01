from __future__ import annotations

from dataclasses import dataclass

from gateway.detection.train import out_of_fold_scores


@dataclass
class _Recall:
    """A "model" that scores 1.0 a text it trained on or that contains a text it trained on
    (a run mined from it): what a fold that saw a piece of the text would do, exaggerated."""

    seen: frozenset[str]

    def score(self, text: str) -> float:
        return float(any(s in text for s in self.seen))


def _fit(texts: list[str], labels: list[int]) -> _Recall:
    return _Recall(frozenset(texts))


def _texts_then_runs(n: int) -> tuple[list[str], list[int], list[int]]:
    """``n`` texts and, after them, a run mined from each (grouped with the text it came from,
    as ``fit_lexical`` groups them)."""
    texts = [f"text {i:02d} about the weather in rome" for i in range(n)]
    runs = [f"text {i:02d} about" for i in range(n)]
    labels = [i % 2 for i in range(n)]
    return texts + runs, labels + labels, list(range(n)) + list(range(n))


def test_every_row_is_scored_by_a_fold_that_saw_neither_it_nor_its_runs() -> None:
    texts, labels, groups = _texts_then_runs(40)
    oof = out_of_fold_scores(texts, labels, groups, list(range(40)), _fit)
    assert sorted(oof) == list(range(40))
    assert set(oof.values()) == {0.0}


def test_without_groups_a_fold_would_have_trained_on_the_runs() -> None:
    # the same texts with every row its own group: the check above has something to catch
    texts, labels, _ = _texts_then_runs(40)
    oof = out_of_fold_scores(texts, labels, list(range(80)), list(range(40)), _fit)
    assert 1.0 in set(oof.values())


def test_only_the_rows_asked_for_are_scored() -> None:
    texts, labels, groups = _texts_then_runs(40)
    oof = out_of_fold_scores(texts, labels, groups, [0, 1, 2], _fit)
    assert sorted(oof) == [0, 1, 2]
