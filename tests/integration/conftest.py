"""Real parts: vLLM on CPU serving SmolLM2 + two PEFT adapters, started once per session, and
the gateway served by uvicorn on a free port. Driven with the official openai client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from gateway.app import create_app
from gateway.auth import add_key
from gateway.settings import Settings
from gateway.stack import VLLMServer
from tests.conftest import BASE, REPO

ADAPTERS = ("alpha", "beta")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    from finetune.base_model import export_base_model

    return export_base_model(REPO / ".gateway" / "models" / BASE)


@pytest.fixture(scope="session")
def adapters_dir(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finetune.adapter_init import init_adapter

    root = tmp_path_factory.mktemp("adapters")
    for i, name in enumerate(ADAPTERS):
        init_adapter(
            base_model_dir,
            root / name,
            name=name,
            base_model_name=BASE,
            description=f"test adapter {name}",
            seed=i,
        )
    return root


@pytest.fixture(scope="session")
def vllm(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    server = VLLMServer(
        base_model_dir, BASE, port=free_port(), python=REPO / ".venv-serve/bin/python", log_path=log
    )
    with server:
        yield server


@dataclass
class RunningGateway:
    url: str
    key: str
    server: uvicorn.Server
    thread: threading.Thread
    clients: list[openai.OpenAI] = field(default_factory=list)

    def client(self) -> openai.OpenAI:
        """An openai client for this gateway, closed when the gateway stops."""
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(10)


def serve_gateway(settings: Settings, key: str) -> RunningGateway:
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=settings.port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("gateway did not start")
        time.sleep(0.05)
    return RunningGateway(f"http://127.0.0.1:{settings.port}", key, server, thread)


def gateway_settings(upstream: str, adapters_dir: Path, keys_file: Path) -> Settings:
    return Settings(
        port=free_port(),
        upstream_url=upstream,  # type: ignore[arg-type]
        adapters_dir=adapters_dir,
        policy_file=REPO / "policies" / "default.yaml",
        keys_file=keys_file,
        events_path=keys_file.parent / "events.sqlite3",
        upstream_read_timeout_s=60,
        adapter_reconcile_interval_s=5,
    )


@pytest.fixture(scope="session")
def gateway(
    vllm: VLLMServer, adapters_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    keys = tmp_path_factory.mktemp("keys") / "keys.json"
    key = add_key(keys, "integration")
    running = serve_gateway(gateway_settings(vllm.url, adapters_dir, keys), key)
    # The gateway's reconcile loop loads the adapters into vLLM at run time.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = httpx.get(f"{running.url}/readyz", timeout=5).json()
        if ready.get("status") == "ready" and not ready.get("adapters_pending"):
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(f"adapters not loaded: {ready}")
    yield running
    running.stop()
