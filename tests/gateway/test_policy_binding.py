"""Policy binding: key binding > model binding > default, each bound file hot-reloaded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.auth import add_key
from gateway.errors import ConfigError
from gateway.metrics import Metrics
from gateway.policy_binding import load_bindings
from gateway.policy_watch import PolicyReloader
from gateway.settings import Settings
from tests.conftest import BASE, FakeVLLM, fake_app

CHAT = "/v1/chat/completions"


def _deny(name: str, word: str) -> str:
    return (
        f"name: {name}\ninput:\n  - id: no-{word}\n    check: deny_list\n    settings:\n"
        f"      patterns: [{{name: {word}, regex: '{word}'}}]\n"
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "policies"
    d.mkdir()
    (d / "team.yaml").write_text(_deny("team", "apple"))
    (d / "model.yaml").write_text(_deny("model", "banana"))
    (d / "bindings.yaml").write_text(
        "version: 1\nkeys:\n  team-key: team.yaml\nmodels:\n  support: model.yaml\n"
        f"  {BASE}: model.yaml\n"
    )
    return d


def test_a_key_binding_wins_over_a_model_binding(folder: Path) -> None:
    b = load_bindings(folder / "bindings.yaml")
    assert b.select("team-key", BASE).name == "team"  # type: ignore[union-attr]
    assert b.select("other", BASE).name == "model"  # type: ignore[union-attr]
    assert b.select("other", "support").name == "model"  # type: ignore[union-attr]
    assert b.select("other", "unbound-model") is None  # the default applies
    assert len(b.holders) == 2  # a file bound twice is loaded once


def test_no_bindings_file_means_the_default_for_everyone() -> None:
    assert load_bindings(None).select("any", BASE) is None


def test_an_unknown_policy_file_fails_listing_the_known_ones(folder: Path) -> None:
    (folder / "bindings.yaml").write_text("keys:\n  k: tema.yaml\n")
    with pytest.raises(ConfigError, match=r"keys\.k: unknown policy file 'tema.yaml'") as exc:
        load_bindings(folder / "bindings.yaml")
    assert "model.yaml, team.yaml" in exc.value.message
    assert "bindings.yaml" not in exc.value.message.split("policies in")[1]


def test_the_bindings_file_is_strict(folder: Path) -> None:
    (folder / "bindings.yaml").write_text("version: 1\nkey:\n  k: team.yaml\n")
    with pytest.raises(ConfigError, match=r"bindings.yaml:2: key: Extra inputs"):
        load_bindings(folder / "bindings.yaml")


def test_an_invalid_bound_policy_fails_the_load(folder: Path) -> None:
    (folder / "team.yaml").write_text("name: team\ninput:\n  - id: x\n    check: nope\n")
    with pytest.raises(ConfigError, match="unknown check 'nope'"):
        load_bindings(folder / "bindings.yaml")


def test_a_bound_policy_reloads_in_its_own_holder(folder: Path) -> None:
    b = load_bindings(folder / "bindings.yaml")
    path = folder / "team.yaml"
    reloader = PolicyReloader(path, b.holders[path], Metrics())
    path.write_text(_deny("team-v2", "cherry"))
    assert reloader.reload() is True
    assert b.select("team-key", BASE).name == "team-v2"  # type: ignore[union-attr]
    path.write_text("name: [broken")
    assert reloader.reload() is False
    assert b.select("team-key", BASE).name == "team-v2"  # type: ignore[union-attr]


@pytest.fixture
async def bound_app(
    settings: Settings, folder: Path, fake_vllm: FakeVLLM
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    team = add_key(settings.keys_file, "team-key")
    other = add_key(settings.keys_file, "other-key")
    app = fake_app(
        settings.model_copy(update={"policy_bindings_file": folder / "bindings.yaml"}),
        fake_vllm,
        watch_policy=False,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as c:
        yield c, team, other


@pytest.mark.anyio
async def test_requests_get_the_policy_of_their_key_then_their_model(
    bound_app: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, team, other = bound_app

    async def status(key: str, text: str) -> int:
        body = {"model": BASE, "messages": [{"role": "user", "content": text}]}
        r = await client.post(CHAT, json=body, headers={"Authorization": f"Bearer {key}"})
        return r.status_code

    assert await status(team, "an apple") == 400  # team.yaml, bound to the key
    assert await status(team, "a banana") == 200  # ... which wins over the model's
    assert await status(other, "a banana") == 400  # model.yaml, bound to the model
    assert await status(other, "an apple") == 200


def test_the_shipped_bindings_load() -> None:
    shipped = Path(__file__).resolve().parents[2] / "policies" / "bindings.yaml"
    b = load_bindings(shipped)
    assert b.select("compliance", "support-assistant").name == "strict"  # type: ignore[union-attr]
    assert b.select("x", "support-assistant").name == "customer-support"  # type: ignore[union-attr]
