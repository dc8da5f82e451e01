"""The embedded default stack: base model export, a real vLLM on CPU, and the gateway.

``gateway up`` (what ``make run`` calls) and the integration tests share :class:`VLLMServer`,
so the test suite starts vLLM exactly the way users do.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

STATE_DIR = Path(".gateway")
DEFAULT_SERVE_PYTHON = Path(".venv-serve/bin/python")


class StackError(RuntimeError):
    """The embedded stack could not start; the message says what to look at."""


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM a child started with ``start_new_session=True`` and its whole group; SIGKILL
    whatever is left after ``grace_s``. Nothing to do when it has already exited."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux SIGTERM the child when the process that started it dies,
    however it dies (``kill -9`` included): the child runs in its own session, so nothing else
    reaches it, and a killed ``gateway up`` or test run would leave vLLM holding its port and
    gigabytes of memory. ``None`` where there is no ``prctl`` (not Linux).

    The libc function is looked up here, in the parent: between ``fork`` and ``exec`` the child
    only makes the call (no import, no allocation by the loader)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    term = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, term)

    return preexec


_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_dtype(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """vLLM's CPU backend picks bfloat16 for a bf16 checkpoint; on a CPU without native bf16
    (no AVX512-BF16 or AMX) that is emulated and about 3-4x slower than float32 at 8-32
    concurrent requests (docs/benchmarks.md). So: "auto" where the CPU has it, else float32."""
    try:
        flags = next(
            (ln.split(":", 1)[1].split() for ln in cpuinfo.read_text().splitlines()
             if ln.startswith("flags")),
            [],
        )  # fmt: skip
    except OSError:
        return "auto"
    return "auto" if _BF16_FLAGS & set(flags) else "float32"


@dataclass
class VLLMServer:
    """A vLLM OpenAI-compatible server in its own process group, with LoRA enabled and
    runtime adapter loading allowed. Use as a context manager; exit stops everything it started.
    If the process that started it dies without stopping it, Linux stops it
    (:func:`die_with_parent`): start it from a thread that lives as long as the process (the
    signal follows the thread that forked)."""

    model_dir: Path
    served_name: str
    port: int = 8000
    host: str = "127.0.0.1"
    python: Path = DEFAULT_SERVE_PYTHON
    log_path: Path = STATE_DIR / "vllm.log"
    max_loras: int = 4
    max_lora_rank: int = 16
    max_model_len: int = 2048
    kv_cache_gib: int = 2
    dtype: str = field(default_factory=lambda: cpu_dtype())
    """``--dtype``: bfloat16 only where the CPU computes it natively (see :func:`cpu_dtype`)."""
    extra_args: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.served_name,
            "--host", self.host, "--port", str(self.port),
            "--enable-lora",
            "--max-loras", str(self.max_loras),
            "--max-lora-rank", str(self.max_lora_rank),
            "--max-model-len", str(self.max_model_len),
            "--dtype", self.dtype,
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        if not self.python.exists():
            raise StackError(f"{self.python} not found: run `make setup` to create .venv-serve")
        env = {
            **os.environ,
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib),
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        log.close()

    def wait_ready(self, timeout_s: float = 300.0, *, stop: threading.Event | None = None) -> None:
        """Poll ``/v1/models`` until vLLM answers. ``stop`` set (by a signal handler) ends the
        wait with KeyboardInterrupt: the handler's own KeyboardInterrupt can be lost when it
        lands inside an import's callback ("Exception ignored in ..."), the flag cannot."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            if self.process is not None and self.process.poll() is not None:
                raise StackError(
                    f"vLLM exited with {self.process.returncode}; see {self.log_path}:\n"
                    + self.log_tail()
                )
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise StackError(f"vLLM not ready after {timeout_s:.0f}s; see {self.log_path}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace_s: float = 15.0) -> None:
        if self.process is not None:
            stop_process_group(self.process, grace_s)

    def kill(self) -> None:
        """Hard stop (kill -9), for failure tests."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> VLLMServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def load_adapters_now(
    upstream_url: str, adapters: dict[str, Path], *, stop: threading.Event | None = None
) -> None:
    """Load adapters into a running vLLM through its runtime API (idempotent). ``stop`` set
    (by a signal handler, :meth:`VLLMServer.wait_ready`) ends it with KeyboardInterrupt before
    the next adapter."""
    for name, path in sorted(adapters.items()):
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        r = httpx.post(
            f"{upstream_url}/v1/load_lora_adapter",
            json={"lora_name": name, "lora_path": str(path.resolve())},
            timeout=120,
        )
        if r.status_code != 200 and b"already been loaded" not in r.content:
            raise StackError(f"loading adapter {name!r} failed: HTTP {r.status_code} {r.text}")
