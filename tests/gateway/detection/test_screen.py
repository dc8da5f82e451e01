"""The screen file: strict, and only valid beside the two heads it was calibrated for."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.detection.paths import HEAD, LEXICAL, SCREEN
from gateway.detection.screen import RETRAIN, Screen, file_sha256, load_screen


def _screen(lexical: Path, semantic: Path) -> Screen:
    return Screen(
        lexical_sha256=file_sha256(lexical),
        semantic_sha256=file_sha256(semantic),
        screen=0.6,
        threshold=0.8,
        share=0.05,
        budget=0.002,
        benign_rows=100,
    )


def test_a_screen_loads_beside_its_own_heads(tmp_path: Path) -> None:
    lexical, semantic = tmp_path / "lexical.npz", tmp_path / "semantic.npz"
    lexical.write_bytes(b"lexical head")
    semantic.write_bytes(b"semantic head")
    _screen(lexical, semantic).save(tmp_path / "screen.json")
    assert load_screen(tmp_path / "screen.json", lexical, semantic).screen == 0.6


@pytest.mark.parametrize("changed", ["lexical", "semantic"])
def test_a_screen_for_other_heads_is_refused_naming_the_command(
    tmp_path: Path, changed: str
) -> None:
    lexical, semantic = tmp_path / "lexical.npz", tmp_path / "semantic.npz"
    lexical.write_bytes(b"lexical head")
    semantic.write_bytes(b"semantic head")
    _screen(lexical, semantic).save(tmp_path / "screen.json")
    (tmp_path / f"{changed}.npz").write_bytes(b"retrained")
    with pytest.raises(ValueError, match=f"another {changed} head") as err:
        load_screen(tmp_path / "screen.json", lexical, semantic)
    assert RETRAIN in str(err.value)


def test_an_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "screen.json"
    text = _screen(LEXICAL, HEAD).model_dump_json()
    path.write_text(text.replace('"screen":', '"screeen": 0.1, "screen":'))
    with pytest.raises(ValidationError, match="screeen"):
        load_screen(path, LEXICAL, HEAD)


def test_the_bundled_screen_matches_the_bundled_heads() -> None:
    screen = load_screen(SCREEN, LEXICAL, HEAD)
    assert 0.5 <= screen.threshold <= 0.99
