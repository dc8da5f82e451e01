"""The servers the bench starts: each in its own process group, logged to a file, stopped on exit.

Optional CPU pinning (``taskset -c``) is per process; see :func:`bench.cli.main` for the layout.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import yaml

from bench.stub import MODEL
from gateway.stack import stop_process_group

REPO = Path(__file__).resolve().parents[1]
BENCH_VENV = REPO / ".venv-bench"
EMPTY_POLICY = "version: 1\nname: guards-off\ndescription: no rules (bench)\n"


class ServerError(RuntimeError):
    """A server did not come up; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    cmd: Sequence[str]
    port: int
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    health: str = "/healthz"
    cpus: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServerError(f"{self.name} is not running")
        return self.process.pid

    def start(self, timeout_s: float = 120.0) -> None:
        cmd = ["taskset", "-c", self.cpus, *self.cmd] if self.cpus else list(self.cmd)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**_inherited(), **self.env},
                start_new_session=True,
                cwd=REPO,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.process.returncode}{self._tail()}"
                )
            try:
                if httpx.get(self.url + self.health, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise ServerError(f"{self.name} not ready after {timeout_s:.0f}s{self._tail()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def _tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return ""
        return f"; log {self.log_path}:\n" + "\n".join(lines)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _inherited() -> dict[str, str]:
    # The caller's GATEWAY_* settings must not leak into the servers under test.
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


def stub(work: Path, cpus: str | None = None) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.stub", "--port", str(port)]
    return Server("stub", cmd, port, work / "stub.log", health="/v1/models", cpus=cpus)


def gateway(
    work: Path,
    name: str,
    upstream: str,
    policy: Path | None,
    key_file: Path,
    cpus: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Server:
    """``gateway serve`` as users run it. ``policy`` None: a policy with no rules (guards off)."""
    port = free_port()
    state = work / name
    state.mkdir(parents=True, exist_ok=True)
    (state / "adapters").mkdir(exist_ok=True)
    if policy is None:
        policy = state / "policy.yaml"
        policy.write_text(EMPTY_POLICY)
    env = {
        "GATEWAY_UPSTREAM_URL": upstream,
        "GATEWAY_POLICY_FILE": str(policy),
        "GATEWAY_KEYS_FILE": str(key_file),
        "GATEWAY_ADAPTERS_DIR": str(state / "adapters"),
        "GATEWAY_EVENTS_PATH": str(state / "events.sqlite3"),
        "GATEWAY_BASE_MODEL": MODEL,
        "OTEL_SDK_DISABLED": "true",
        **(extra_env or {}),
    }
    cmd = [sys.executable, "-c", "from gateway.cli import main; main()", "serve"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    return Server(name, cmd, port, work / f"{name}.log", env=env, cpus=cpus)


def litellm_available() -> bool:
    return (BENCH_VENV / "bin" / "litellm").exists()


def litellm(work: Path, upstream: str, cpus: str | None = None) -> tuple[Server, str]:
    """LiteLLM proxy from its own venv, one worker, no database, pointed at the same upstream."""
    master_key = "sk-" + secrets.token_urlsafe(32)
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"{upstream}/v1",
                    "api_key": "unused",
                },
            }
        ],
        "general_settings": {"master_key": master_key},
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }
    path = work / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    cmd = [str(BENCH_VENV / "bin" / "litellm"), "--config", str(path)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "DO_NOT_TRACK": "1"}
    server = Server(
        "litellm", cmd, port, work / "litellm.log", env=env, health="/health/liveliness", cpus=cpus
    )
    return server, master_key
