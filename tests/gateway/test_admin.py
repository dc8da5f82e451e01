"""The admin API and the adapter lifecycle through the ASGI app, over two fake replicas."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.adapters import write_manifest
from gateway.app import create_app
from gateway.auth import KeyStore, add_key
from gateway.settings import Settings
from gateway.state import Gateway
from tests.conftest import BASE, REPO
from tests.gateway.fleet_fakes import FakeFleet

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"


def new_adapter(root: Path, name: str, status: str = "candidate") -> None:
    folder = root / name
    shutil.copytree(REPO / "adapters" / "hardened", folder)
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    write_manifest(folder, {**manifest, "name": name, "status": status, "created_by": "test"})


def gateway_of_app(app: object) -> Gateway:
    gw: Gateway = app.state.gateway  # type: ignore[attr-defined]
    return gw


class Admin:
    def __init__(self, app: object, fake: FakeFleet, admin: str, user: str) -> None:
        self.app, self.fake, self.admin_key, self.user_key = app, fake, admin, user

    def client(self, key: str, port: int = 80) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),  # type: ignore[arg-type]
            base_url=f"http://gateway.test:{port}",
            headers={"Authorization": f"Bearer {key}"},
        )


@pytest.fixture
async def fleet_admin(settings: Settings, tmp_path: Path) -> AsyncIterator[Admin]:
    root = tmp_path / "adapters"
    root.mkdir()
    new_adapter(root, "live", "active")
    fake = FakeFleet("a", "b")
    s = settings.model_copy(update={"upstream_urls": fake.urls, "adapters_dir": root})
    admin = add_key(s.keys_file, "ops", admin=True)
    user = add_key(s.keys_file, "user", ["live"])
    app = create_app(
        s, transport=fake.transport(), keys=KeyStore.load(s.keys_file), reconcile=False
    )
    yield Admin(app, fake, admin, user)
    await gateway_of_app(app).backend.aclose()


async def test_admin_routes_need_an_admin_key(fleet_admin: Admin) -> None:
    async with fleet_admin.client("gw-wrong") as c:
        assert (await c.get("/admin/adapters")).status_code == 401
    async with fleet_admin.client(fleet_admin.user_key) as c:
        r = await c.post("/admin/adapters/live/retire")
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_key_required"
    async with fleet_admin.client(fleet_admin.admin_key) as c:
        listing = (await c.get("/admin/adapters")).json()
    assert [a["name"] for a in listing["adapters"]] == ["live"]
    assert [r["url"] for r in listing["replicas"]] == ["http://a", "http://b"]


async def test_register_active_loads_everywhere_and_serves(
    fleet_admin: Admin, settings: Settings
) -> None:
    new_adapter(Path(gateway_of_app(fleet_admin.app).settings.adapters_dir), "fresh")
    async with fleet_admin.client(fleet_admin.admin_key) as c:
        r = await c.post("/admin/adapters", json={"name": "fresh", "status": "active"})
        assert r.status_code == 201, r.text
        assert r.json()["replicas"] == {"http://a": "loaded", "http://b": "loaded"}
        assert r.json()["adapter"]["status"] == "active"
        for _ in range(2):
            answer = await c.post(
                CHAT, json={"model": "fresh", "messages": [{"role": "user", "content": "hi"}]}
            )
            assert answer.status_code == 200, answer.text
        assert "fresh" in {m["id"] for m in (await c.get("/v1/models")).json()["data"]}
    assert all(fleet_admin.fake[h].loads["fresh"] == 1 for h in ("a", "b"))
    assert fleet_admin.fake["a"].served == fleet_admin.fake["b"].served == ["fresh"]
    # the manifest on disk says so too: the registry is the source of truth
    folder = Path(gateway_of_app(fleet_admin.app).settings.adapters_dir) / "fresh"
    assert yaml.safe_load((folder / "manifest.yaml").read_text())["status"] == "active"


@pytest.mark.parametrize(
    ("body", "status"),
    [({"name": "../live"}, 400), ({"name": "Live"}, 400), ({"name": "nope"}, 404),
     ({"name": "live", "status": "on"}, 400), ({"name": "live", "x": 1}, 400)],
)  # fmt: skip
async def test_register_refuses_bad_names_and_bodies(
    fleet_admin: Admin, body: dict[str, object], status: int
) -> None:
    async with fleet_admin.client(fleet_admin.admin_key) as c:
        assert (await c.post("/admin/adapters", json=body)).status_code == status


async def test_same_adapter_loads_once_different_ones_concurrently(fleet_admin: Admin) -> None:
    root = Path(gateway_of_app(fleet_admin.app).settings.adapters_dir)
    for name in ("one", "two"):
        new_adapter(root, name)
    for replica in fleet_admin.fake.replicas.values():
        replica.load_delay_s = 0.2
    async with fleet_admin.client(fleet_admin.admin_key) as c:
        for name in ("one", "two"):
            await c.post("/admin/adapters", json={"name": name})  # candidates: not loaded
        results = await asyncio.gather(
            *(c.post(f"/admin/adapters/{n}/load") for n in ("one", "two", "one", "one", "two"))
        )
    assert all(r.status_code == 200 for r in results)
    for replica in fleet_admin.fake.replicas.values():
        assert replica.loads["one"] == replica.loads["two"] == 1
        assert replica.max_concurrent_loads == 2


async def test_promote_retire_unload(fleet_admin: Admin) -> None:
    gw = gateway_of_app(fleet_admin.app)
    assert gw.lifecycle is not None
    await gw.lifecycle.reconcile_all()
    assert "live" in fleet_admin.fake["a"].models
    ask = {"model": "live", "messages": [{"role": "user", "content": "hi"}]}
    async with fleet_admin.client(fleet_admin.admin_key) as c:
        r = await c.post("/admin/adapters/live/unload")
        assert r.status_code == 400  # the fleet keeps active adapters loaded
        r = await c.post("/admin/adapters/live/promote", json={"status": "shadow"})
        assert r.status_code == 200
    async with fleet_admin.client(fleet_admin.user_key) as c:  # names "live" explicitly
        assert (await c.post(CHAT, json=ask)).status_code == 200
    async with fleet_admin.client(fleet_admin.admin_key) as c:  # "*" does not reach shadow
        assert (await c.post(CHAT, json=ask)).status_code == 404
        r = await c.post("/admin/adapters/live/retire")
        assert r.json()["replicas"] == {"http://a": "unloaded", "http://b": "unloaded"}
        assert (await c.post("/admin/adapters/live/load")).status_code == 400
    assert "live" not in fleet_admin.fake["a"].models
    async with fleet_admin.client(fleet_admin.user_key) as c:
        assert (await c.post(CHAT, json=ask)).status_code == 404


async def test_reconcile_brings_a_restarted_replicas_adapters_back(fleet_admin: Admin) -> None:
    gw = gateway_of_app(fleet_admin.app)
    assert gw.lifecycle is not None
    assert await gw.lifecycle.reconcile_all() == []
    fleet_admin.fake["b"].down = True
    assert await gw.lifecycle.reconcile_all() == [
        "http://b: down (the model server is unreachable)"
    ]
    fleet_admin.fake["b"].down = False
    fleet_admin.fake["b"].models = {BASE}  # restarted: runtime-loaded adapters are gone
    fleet_admin.fake["b"].models.add("stale")  # and something the registry does not know
    assert await gw.lifecycle.reconcile_all() == []
    assert "live" in fleet_admin.fake["b"].models
    assert fleet_admin.fake["b"].loads["live"] == 2
    assert "stale" in fleet_admin.fake["b"].models  # unknown names are left alone


async def test_admin_port_separates_the_admin_api(settings: Settings, tmp_path: Path) -> None:
    fake = FakeFleet("a")
    s = settings.model_copy(update={"upstream_urls": fake.urls, "admin_port": 9001})
    key = add_key(s.keys_file, "ops", admin=True)
    app = create_app(
        s, transport=fake.transport(), keys=KeyStore.load(s.keys_file), reconcile=False
    )
    admin = Admin(app, fake, key, key)
    async with admin.client(key, port=80) as c:
        assert (await c.get("/admin/adapters")).status_code == 404
    async with admin.client(key, port=9001) as c:
        assert (await c.get("/admin/adapters")).status_code == 200
