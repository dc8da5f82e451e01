"""The extracted corpus is fetched again when the curated benign rows it holds have changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.detection import datasets
from gateway.detection.paths import BENIGN
from gateway.hashing import file_sha256


def test_the_corpus_is_extracted_again_after_benign_yaml_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path | None] = []

    def fetch(dest: Path | None = None) -> Path:  # what fetch leaves behind, without the wheels
        assert dest is not None
        calls.append(dest)
        out = dest / "corpus.jsonl"
        out.write_text("")
        (dest / "corpus.jsonl.benign-sha256").write_text(file_sha256(BENIGN) + "\n")
        return out

    monkeypatch.setattr(datasets, "fetch", fetch)
    assert datasets.ensure(tmp_path) == tmp_path / "corpus.jsonl"  # missing: fetched
    datasets.ensure(tmp_path)  # extracted from this benign.yaml: kept
    assert calls == [tmp_path]
    (tmp_path / "corpus.jsonl.benign-sha256").write_text("0" * 64 + "\n")  # from another one
    datasets.ensure(tmp_path)
    (tmp_path / "corpus.jsonl.benign-sha256").unlink()  # extracted before stamps existed
    datasets.ensure(tmp_path)
    assert calls == [tmp_path] * 3
