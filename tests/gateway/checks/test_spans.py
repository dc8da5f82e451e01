from __future__ import annotations

from gateway.checks.spans import count_kinds, mask, non_overlapping


def test_an_overlapping_later_candidate_loses_and_the_result_is_in_text_order() -> None:
    found = non_overlapping([("card", 10, 20), ("phone", 12, 18), ("email", 0, 5), ("x", 20, 22)])
    assert found == [("email", 0, 5), ("card", 10, 20), ("x", 20, 22)]


def test_mask_replaces_each_match_and_keeps_the_rest() -> None:
    text = "mail a@b.io or call 555"
    masked = mask(text, [("email", 5, 11), ("phone", 20, 23)], lambda k: f"<{k.upper()}>")
    assert masked == "mail <EMAIL> or call <PHONE>"


def test_count_kinds_counts_each_kind_in_sorted_order() -> None:
    matches = [("phone", 0, 3), ("email", 5, 9), ("phone", 10, 12)]
    assert count_kinds(matches) == "1 email, 2 phone"
    assert count_kinds([]) == ""
