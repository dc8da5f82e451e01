from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from finetune.manifest import update, write_candidate
from finetune.promote import (
    AdminAPI,
    PromoteError,
    gate_passed,
    promote_direct,
    promote_via_gateway,
)
from gateway.adapters import Status, load_adapter, read_manifest
from tests.conftest import BASE


def _candidate(root: Path, weights: bytes = b"new", passed: bool | None = True) -> Path:
    folder = root / "hardened"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "README.md").write_text("not copied")
    write_candidate(folder, name="hardened", base_model=BASE, description="", evaluation={})
    if passed is not None:
        update(folder, evaluation={"gate": {"passed": passed}})
    return folder


def test_gate_decision_is_read_from_the_manifest(tmp_path: Path) -> None:
    assert gate_passed(_candidate(tmp_path / "a"))
    assert not gate_passed(_candidate(tmp_path / "b", passed=False))
    assert not gate_passed(_candidate(tmp_path / "c", passed=None))


def test_direct_promotion_archives_the_old_folder(tmp_path: Path) -> None:
    adapters = tmp_path / "adapters"
    old = _candidate(adapters, b"old")
    source = _candidate(tmp_path / "run")
    promo = promote_direct(source, adapters, tmp_path / "archive", Status.ACTIVE, None)
    installed = load_adapter(promo.target)
    assert installed.status is Status.ACTIVE
    assert (old / "adapter_model.safetensors").read_bytes() == b"new"
    assert not (promo.target / "README.md").exists()
    assert promo.archived is not None
    assert (promo.archived / "adapter_model.safetensors").read_bytes() == b"old"


class FakeAdmin:
    """The admin API's contract (gateway/admin.py) over a dict registry."""

    def __init__(self, adapters_dir: Path, fail_promote_to: str | None = None) -> None:
        self.adapters_dir, self.fail_promote_to = adapters_dir, fail_promote_to
        self.registry: dict[str, str] = {}
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.calls.append(f"{request.method} {request.url.path} {body.get('status', '')}".strip())
        if request.method == "GET":
            adapters = [{"name": n, "status": s} for n, s in self.registry.items()]
            return httpx.Response(200, json={"adapters": adapters, "replicas": []})
        if request.url.path == "/admin/adapters":
            load_adapter(self.adapters_dir / body["name"])  # the gateway verifies the folder
            self.registry[body["name"]] = body["status"]
            return httpx.Response(201, json={"replicas": {}})
        name = request.url.path.split("/")[3]
        if body["status"] == self.fail_promote_to:
            return httpx.Response(200, json={"replicas": {"http://v1": "error: boom"}})
        self.registry[name] = body["status"]
        return httpx.Response(200, json={"replicas": {"http://v1": "loaded"}})


def test_via_gateway_demotes_registers_and_promotes(tmp_path: Path) -> None:
    adapters = tmp_path / "adapters"
    _candidate(adapters, b"old")
    fake = FakeAdmin(adapters)
    fake.registry["hardened"] = "active"
    api = AdminAPI("http://gw.test", "k", transport=httpx.MockTransport(fake))
    promo = promote_via_gateway(
        _candidate(tmp_path / "run"), adapters, tmp_path / "archive", api, Status.SHADOW
    )
    assert fake.calls == [
        "GET /admin/adapters",
        "POST /admin/adapters/hardened/promote candidate",
        "POST /admin/adapters candidate",
        "POST /admin/adapters/hardened/promote shadow",
    ]
    assert promo.status is Status.SHADOW and fake.registry["hardened"] == "shadow"
    assert (promo.target / "adapter_model.safetensors").read_bytes() == b"new"


def test_failed_load_rolls_back_to_the_previous_adapter(tmp_path: Path) -> None:
    adapters = tmp_path / "adapters"
    _candidate(adapters, b"old")
    update(adapters / "hardened", status=Status.ACTIVE)
    fake = FakeAdmin(adapters, fail_promote_to="active")
    fake.registry["hardened"] = "active"
    api = AdminAPI("http://gw.test", "k", transport=httpx.MockTransport(fake))
    with pytest.raises(PromoteError, match="rolled back"):
        promote_via_gateway(
            _candidate(tmp_path / "run"), adapters, tmp_path / "archive", api, Status.ACTIVE
        )
    assert (adapters / "hardened" / "adapter_model.safetensors").read_bytes() == b"old"
    assert read_manifest(adapters / "hardened").status is Status.ACTIVE
    assert fake.calls[-1] == "POST /admin/adapters active"  # re-registered as it was
