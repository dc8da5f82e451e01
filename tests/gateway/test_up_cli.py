from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import gateway.up
from gateway.cli import app
from gateway.settings import Settings

runner = CliRunner()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """What `gateway up` would start the stack with (the stack itself is not started here: the
    integration tests start real vLLM)."""
    calls: list[dict[str, object]] = []

    def record(
        settings: Settings, vllm_port: int, serve_python: Path, *, vllm_dtype: str | None = None
    ) -> None:
        upstream = str(settings.upstream_url).rstrip("/")
        calls.append({"port": vllm_port, "upstream": upstream, "dtype": vllm_dtype})

    monkeypatch.setattr(gateway.up, "run_stack", record)
    return calls


def test_up_passes_the_vllm_dtype_and_none_by_default(
    started: list[dict[str, object]],
) -> None:
    assert runner.invoke(app, ["up", "--vllm-port", "8123"]).exit_code == 0
    assert runner.invoke(app, ["up", "--vllm-dtype", "float32"]).exit_code == 0
    assert started == [
        {"port": 8123, "upstream": "http://127.0.0.1:8123", "dtype": None},
        {"port": 8000, "upstream": "http://127.0.0.1:8000", "dtype": "float32"},
    ]


def test_up_refuses_an_unknown_dtype_and_lists_the_known_ones(
    started: list[dict[str, object]],
) -> None:
    result = runner.invoke(app, ["up", "--vllm-dtype", "fp8"])
    assert result.exit_code == 2
    assert "auto, bfloat16, float32" in result.output
    assert started == []
