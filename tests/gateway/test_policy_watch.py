"""Hot reload end to end: the app's own lifespan runs the watcher in the test's event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import structlog

from gateway.app import create_app
from gateway.auth import KeyStore, add_key
from gateway.metrics import Metrics
from gateway.policy import load_policy
from gateway.policy_watch import PolicyReloader
from gateway.settings import Settings
from gateway.state import PolicyHolder
from tests.conftest import BASE, REPO, FakeVLLM, serving

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"

OPEN = "version: 1\nname: open\ninput:\n  - {id: size, check: size_limit}\n"
BANANAS = """version: 1
name: no-bananas
input:
  - id: no-bananas
    check: deny_list
    settings:
      patterns: [{name: banana, regex: banana}]
"""
BROKEN = BANANAS.replace("    check: deny_list", "    check: deny_list\n    acton: block")


def write_atomically(path: Path, text: str) -> None:
    """How editors save: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def ask(content: str) -> dict[str, object]:
    return {"model": BASE, "messages": [{"role": "user", "content": content}]}


def reloads(metrics: Metrics, result: str) -> float:
    return (
        metrics.registry.get_sample_value("gateway_policy_reloads_total", {"result": result}) or 0
    )


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies" / "live.yaml"
    path.parent.mkdir()
    path.write_text(OPEN, encoding="utf-8")
    return path


@pytest.fixture
async def live(
    tmp_path: Path, policy_file: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Metrics]]:
    settings = Settings(
        upstream_url="http://vllm.test",  # type: ignore[arg-type]
        adapters_dir=REPO / "adapters",
        policy_file=policy_file,
        keys_file=tmp_path / "keys.json",
        events_path=tmp_path / "events.sqlite3",
    )
    key = add_key(settings.keys_file, "tester")
    app = create_app(
        settings,
        transport=httpx.MockTransport(FakeVLLM()),
        keys=KeyStore.load(settings.keys_file),
        reconcile=False,
    )
    async with serving(app, key) as client:
        await asyncio.sleep(0.2)  # let the watcher start watching
        yield client, app.state.gateway.metrics


async def status_within(client: httpx.AsyncClient, status: int, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        r = await client.post(CHAT, json=ask("I like banana bread"))
        if r.status_code == status:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"status {status} not seen within {seconds} s")


async def test_an_edit_changes_behaviour_within_two_seconds(
    live: tuple[httpx.AsyncClient, Metrics], policy_file: Path
) -> None:
    client, metrics = live
    assert (await client.post(CHAT, json=ask("I like banana bread"))).status_code == 200

    write_atomically(policy_file, BANANAS)
    elapsed = await status_within(client, 400, 2.0)
    assert elapsed < 2.0
    assert reloads(metrics, "ok") == 1
    # The reloaded policy is observed like the first one: its verdicts reach the metrics.
    blocked = {
        "policy": "no-bananas",
        "stage": "input",
        "rule": "no-bananas",
        "action": "block",
        "family": "deny_list",
    }
    assert metrics.registry.get_sample_value("gateway_check_verdicts_total", blocked) >= 1

    write_atomically(policy_file, OPEN)
    await status_within(client, 200, 2.0)
    assert reloads(metrics, "ok") == 2


async def test_a_broken_edit_keeps_the_last_good_policy(
    live: tuple[httpx.AsyncClient, Metrics], policy_file: Path
) -> None:
    client, metrics = live
    write_atomically(policy_file, BANANAS)
    await status_within(client, 400, 2.0)

    with structlog.testing.capture_logs() as logs:
        write_atomically(policy_file, BROKEN)
        for _ in range(40):  # up to 2 s
            if reloads(metrics, "error") >= 1:
                break
            await asyncio.sleep(0.05)
    assert reloads(metrics, "error") == 1 and reloads(metrics, "ok") == 1
    [failed] = [e for e in logs if e["event"] == "policy_reload_failed"]
    assert "live.yaml:6" in failed["error"] and "acton" in failed["error"]
    assert failed["kept"] == "no-bananas" and failed["log_level"] == "error"
    r = await client.post(CHAT, json=ask("I like banana bread"))
    assert r.status_code == 400  # still the last good version


def test_the_reloader_acts_only_on_new_content(policy_file: Path) -> None:
    metrics = Metrics()
    holder = PolicyHolder(load_policy(policy_file))
    first = holder.current
    reloader = PolicyReloader(policy_file, holder, metrics)
    assert reloader.reload() is None and holder.current is first  # nothing changed

    policy_file.write_text(BROKEN, encoding="utf-8")
    assert reloader.reload() is False and holder.current is first
    assert reloader.reload() is None  # the same bad content is reported once
    policy_file.unlink()
    assert reloader.reload() is False and holder.current is first
    assert reloads(metrics, "error") == 2

    policy_file.write_text(BANANAS, encoding="utf-8")
    assert reloader.reload() is True and holder.current.name == "no-bananas"
    assert reloads(metrics, "ok") == 1


async def test_configmap_symlink_swaps_are_all_picked_up(tmp_path: Path) -> None:
    """Kubernetes updates a ConfigMap mount by swapping the ``..data`` symlink to a new
    timestamped folder and deleting the old one; every update must reach the gateway."""
    import asyncio
    import os
    import shutil

    from gateway.metrics import Metrics
    from gateway.policy import load_policy
    from gateway.policy_watch import PolicyReloader, watch_policy
    from gateway.state import PolicyHolder

    source = (REPO / "policies" / "default.yaml").read_text()

    def publish(version: int, description: str) -> None:
        folder = tmp_path / f"..v{version}"
        folder.mkdir()
        text = source.replace("description: ", f"description: {description} ", 1)
        (folder / "default.yaml").write_text(text)
        (tmp_path / "..data_tmp").symlink_to(folder.name)
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        shutil.rmtree(tmp_path / f"..v{version - 1}", ignore_errors=True)

    publish(1, "v1")
    (tmp_path / "default.yaml").symlink_to("..data/default.yaml")
    holder = PolicyHolder(load_policy(tmp_path / "default.yaml"))
    task = asyncio.create_task(
        watch_policy(PolicyReloader(tmp_path / "default.yaml", holder, Metrics()))
    )
    try:
        await asyncio.sleep(0.5)
        for version in (2, 3):
            publish(version, f"v{version}")
            for _ in range(40):
                await asyncio.sleep(0.1)
                if holder.current.spec.description.startswith(f"v{version}"):
                    break
            assert holder.current.spec.description.startswith(f"v{version}")
    finally:
        task.cancel()
