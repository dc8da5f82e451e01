"""The screen's fitting and calibration: the rows its head learns from, out-of-fold
probabilities, the screened share of benign texts, and a threshold that blocks no more of them
than the budget allows."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.detection.datasets import Row
from gateway.detection.screen_calibration import (
    ZONE,
    calibrate,
    fit_head,
    length_screens,
    out_of_fold,
    tabulate,
    zone,
)


def _benign(n: int) -> list[float]:
    return [i / n for i in range(n)]  # lexical scores 0.00 .. 0.99


def test_the_screen_is_the_quantile_that_screens_the_share() -> None:
    lex = _benign(100)
    semantic = {i: 0.0 for i in range(100)}
    cut = calibrate(lex, [5] * 100, semantic, lexical_threshold=1.0, share=0.10, budget=0.0)
    assert sum(s >= cut.screen for s in lex) == 10
    assert cut.longer == ()  # no long texts: one screen for every length


def test_the_threshold_blocks_at_most_the_budget_of_all_benign_texts() -> None:
    lex = _benign(1000)
    # the screened texts' semantic scores, all distinct and high
    semantic = {i: 0.6 + (i - 900) / 500 for i in range(900, 1000)}
    screen, _, threshold = calibrate(
        lex, [5] * 1000, semantic, lexical_threshold=1.0, share=0.10, budget=0.005
    )
    screened = [i for i, s in enumerate(lex) if s >= screen]
    blocked = [i for i in screened if semantic[i] >= threshold]
    assert len(blocked) == 5  # 0.5% of 1000
    assert all(semantic[i] < threshold for i in screened if i not in blocked)


def test_texts_the_lexical_head_blocks_itself_do_not_spend_the_budget() -> None:
    lex = _benign(1000)
    semantic = {i: 0.9 if i >= 990 else 0.6 + (i - 900) / 500 for i in range(900, 1000)}
    # the ten texts at or above 0.99 are the lexical head's: their 0.9 must not set the threshold
    *_, threshold = calibrate(
        lex, [5] * 1000, semantic, lexical_threshold=0.99, share=0.10, budget=0.005
    )
    assert threshold < 0.9


def test_the_threshold_is_never_below_one_half() -> None:
    lex = _benign(100)
    semantic = {i: 0.1 for i in range(100)}
    assert calibrate(lex, [5] * 100, semantic, 1.0, share=0.10, budget=0.0).threshold == 0.5


def test_a_screened_text_without_a_semantic_score_is_an_error() -> None:
    with pytest.raises(ValueError, match="no probability from the head"):
        calibrate(_benign(100), [5] * 100, {}, 1.0, share=0.10, budget=0.0)


def test_each_length_is_screened_at_the_share_of_its_own_benign_texts() -> None:
    # long benign texts score higher (their best run of more runs): 10% of each length screened
    composites = {16: _benign(100), 64: [0.5 + s / 2 for s in _benign(100)]}
    steps = length_screens(composites, base=0.85, share=0.10)
    assert [w for w, _ in steps] == [16, 64]
    assert sum(s >= steps[0][1] for s in composites[16]) == 10
    assert sum(s >= steps[1][1] for s in composites[64]) == 10


def test_a_length_whose_texts_score_lower_keeps_the_screen_of_shorter_ones() -> None:
    low = [s / 2 for s in _benign(100)]  # under the base screen
    assert length_screens({16: low}, base=0.85, share=0.10) == ()
    steps = length_screens({16: _benign(100), 32: low, 64: _benign(100)}, 0.5, 0.10)
    assert [w for w, _ in steps] == [16]  # 64's quantile equals 16's: no step


def test_the_budget_is_spent_on_texts_screened_at_their_length() -> None:
    # twenty benign texts at 0.95: ten short, ten long. The long ones' screen (from long
    # composites scoring up to 0.99) is above 0.95, so only the short ones are screened, and the
    # head's threshold need only pass those
    lex = [0.1] * 980 + [0.95] * 20
    words = [5] * 990 + [300] * 10
    gray = {i: (0.9 if i >= 990 else 0.6) for i in range(980, 1000)}
    composites = {256: [0.1] * 90 + [0.99] * 10}
    cut = calibrate(lex, words, gray, 1.0, share=0.02, budget=0.0, composites=composites)
    assert cut.longer == ((256, 0.99),)
    assert 0.6 < cut.threshold <= 0.9


def _row(text: str, label: int) -> Row:
    return Row(text, label, "test", "s-labs" if label else "benign", "train")


def test_tabulate_reports_what_the_screen_buys_on_held_out_attacks() -> None:
    benign = [_row(f"benign {i}", 0) for i in range(200)]
    attacks = [_row(f"attack {i}", 1) for i in range(20)]
    rows = benign + attacks
    # lexical: benign spread 0..0.995; attacks at 0.97 (screened at a 5% share, under the
    # lexical threshold of 0.999): only the semantic score can tell them apart
    oof = {i: i / 200 for i in range(200)} | {200 + i: 0.97 for i in range(20)}
    near = zone(rows, oof, 0.999)  # the head's probabilities exist for these rows only
    gray = {i: 0.95 if rows[i].label else 0.55 for i in near}

    table = tabulate(rows, oof, 0.999, gray, budget=0.0, share=0.05)
    assert table.cut.threshold > 0.55
    assert table.share == 0.05 and table.benign_rows == 200
    assert "| 5.0% (chosen) |" in table.markdown
    chosen = next(line for line in table.markdown.splitlines() if "(chosen)" in line)
    assert chosen.endswith("| 100.00% |")  # every attack caught through the screen


def test_without_a_share_the_one_that_detects_most_is_chosen() -> None:
    # the benign texts just below the top 0.5% of lexical scores look like attacks to the
    # semantic head too: a wider screen takes them in, and the budget then forces its threshold
    # above the attacks' 0.9
    benign = [_row(f"benign {i}", 0) for i in range(1000)]
    attacks = [_row(f"attack {i}", 1) for i in range(20)]
    oof = {i: i / 1000 for i in range(1000)} | {1000 + i: 0.995 for i in range(20)}

    def semantic(text: str) -> float:
        if text.startswith("attack"):
            return 0.9
        return min(1.0, 0.5 + 5 * (1000 - int(text.split()[1])) / 1000)  # 0.5 at the top

    rows = benign + attacks
    gray = {i: semantic(rows[i].text) for i in zone(rows, oof, 0.999)}
    table = tabulate(rows, oof, 0.999, gray, budget=0.001)
    assert table.share == 0.005
    assert "| 0.5% (chosen) |" in table.markdown


def test_a_share_whose_capped_threshold_overspends_the_budget_is_never_chosen() -> None:
    # from the 1% screen on, seven benign texts score 1.0: no threshold (at most 1) passes them,
    # so it blocks them all (0.7% > 0.2%), though those shares catch the attacks the 0.5% misses
    benign = [_row(f"benign {i}", 0) for i in range(1000)]
    attacks = [_row(f"attack {i}", 1) for i in range(20)]
    oof = {i: i / 1000 for i in range(1000)} | {1000 + i: 0.992 for i in range(20)}
    high = {f"benign {i}" for i in (*range(990, 995), 997, 998)}

    def semantic(text: str) -> float:
        return 1.0 if text in high or text.startswith("attack") else 0.0

    rows = benign + attacks
    gray = {i: semantic(rows[i].text) for i in zone(rows, oof, 0.999)}
    table = tabulate(rows, oof, 0.999, gray, budget=0.002)
    assert table.share == 0.005
    wider = next(line for line in table.markdown.splitlines() if line.startswith("| 1.0% |"))
    assert wider.endswith("| 1.000 | 0.90% | 0.70% | 100.00% |")


def test_when_no_share_keeps_within_the_budget_it_is_an_error() -> None:
    benign = [_row(f"benign {i}", 0) for i in range(1000)]
    oof = {i: i / 1000 for i in range(1000)}
    with pytest.raises(ValueError, match="no share"):
        tabulate(benign, oof, 0.999, dict.fromkeys(zone(benign, oof, 0.999), 1.0), budget=0.002)


def test_the_zone_is_the_rows_above_the_benign_quantile_and_under_the_lexical_threshold() -> None:
    benign = [_row(f"benign {i}", 0) for i in range(1000)]
    attacks = [_row(f"attack {i}", 1) for i in range(3)]
    oof = {i: i / 1000 for i in range(1000)} | {1000: 0.2, 1001: 0.95, 1002: 0.9995}
    near = zone(benign + attacks, oof, 0.999)
    assert sum(1 for i in near if i < 1000) == ZONE * 1000 - 1  # 0.900 .. 0.998
    assert 1001 in near  # an attack inside it
    assert 1000 not in near and 1002 not in near  # under the zone; blocked by the lexical head


def test_out_of_fold_probabilities_never_come_from_a_fit_on_the_row() -> None:
    # each row's label is noise except for one informative feature: a fit that saw the row
    # would memorise the noise features too; out of fold, the noise-only rows score near chance
    rng = np.random.default_rng(0)
    n = 200
    y = np.array([i % 2 for i in range(n)])
    noise = rng.normal(size=(n, 50)).astype(np.float32)
    x = np.column_stack([np.zeros(n, dtype=np.float32), noise])
    seen = fit_head(x, y.tolist())
    in_sample = 1 / (1 + np.exp(-(x @ np.array(seen[0]) + seen[1])))
    held = out_of_fold(x, y.tolist())
    accuracy = lambda p: float(np.mean((p >= 0.5) == y))  # noqa: E731
    assert accuracy(in_sample) > 0.7  # memorised
    assert 0.3 < accuracy(held) < 0.7  # not
    assert held.shape == (n,)


def test_the_head_learns_a_separable_feature() -> None:
    y = [0] * 50 + [1] * 50
    x = np.array([[float(label), 0.0] for label in y], dtype=np.float32)
    coef, _ = fit_head(x, y)
    assert coef[0] > 0
    probs = out_of_fold(x, y)
    assert all(p >= 0.5 for p in probs[50:]) and all(p < 0.5 for p in probs[:50])


def test_a_wider_share_must_buy_a_point_of_attacks_per_point_of_traffic() -> None:
    # 2% -> 3% catches one more attack of 200 (+0.5 points) for one more point of benign
    # traffic screened: not worth MiniLM on it; 0.5% -> 2% catches 49 (+24.5 points)
    benign = [_row(f"benign {i}", 0) for i in range(1000)]
    attacks = [_row(f"attack {i}", 1) for i in range(200)]
    oof = {i: i / 1000 for i in range(1000)}
    oof |= {1000 + i: 0.999 if i < 150 else 0.98 if i < 199 else 0.97 for i in range(200)}
    rows = benign + attacks
    gray = {i: float(rows[i].label) for i in zone(rows, oof, 0.995)}
    table = tabulate(rows, oof, 0.995, gray, budget=0.002)
    recall = {
        line.split(" | ")[0].strip("| (chosen)"): line.rsplit(" | ", 1)[1].strip(" |%")
        for line in table.markdown.splitlines()
        if line.startswith("| ") and "%" in line.split(" | ")[0]
    }
    assert recall == {"0.5%": "75.00", "1.0%": "75.00", "2.0%": "99.50", "3.0%": "100.00"}
    assert table.share == 0.02
