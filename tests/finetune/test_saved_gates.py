from pathlib import Path

import numpy as np

from finetune.saved_gates import Gate, load_gates, save_gates


def gates(seed: int) -> list[Gate]:
    rng = np.random.default_rng(seed)
    return [
        Gate(
            layer=layer,
            row=rng.normal(size=(1, 8)).astype(np.float32),
            one=rng.normal(size=(1, 8)).astype(np.float32),
            attacks_open=0.9,
            benign_open=0.01 * layer,
        )
        for layer in (3, 7)
    ]


def test_round_trip_under_the_same_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "probe_gate.npz"
    saved = gates(0)
    save_gates(path, "key-a", saved, {"conversations": 12, "positions": 340})
    loaded = load_gates(path, "key-a", [3, 7])
    assert loaded is not None
    got, counts = loaded
    assert counts == {"conversations": 12, "positions": 340}
    for want, have in zip(saved, got, strict=True):
        assert have.layer == want.layer
        np.testing.assert_array_equal(have.row, want.row)
        np.testing.assert_array_equal(have.one, want.one)
        assert (have.attacks_open, have.benign_open) == (want.attacks_open, want.benign_open)
    assert not list(path.parent.glob("*.part")), "the file is written aside, then moved"


def test_other_inputs_or_no_file_give_nothing(tmp_path: Path) -> None:
    path = tmp_path / "probe_gate.npz"
    assert load_gates(path, "key-a", [3, 7]) is None
    save_gates(path, "key-a", gates(0), {"conversations": 1, "positions": 1})
    assert load_gates(path, "key-b", [3, 7]) is None


def test_saving_again_replaces_the_gates(tmp_path: Path) -> None:
    path = tmp_path / "probe_gate.npz"
    save_gates(path, "key-a", gates(0), {"conversations": 1, "positions": 1})
    save_gates(path, "key-b", gates(1), {"conversations": 2, "positions": 2})
    assert load_gates(path, "key-a", [3, 7]) is None
    loaded = load_gates(path, "key-b", [3, 7])
    assert loaded is not None
    np.testing.assert_array_equal(loaded[0][0].row, gates(1)[0].row)
