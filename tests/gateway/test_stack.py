"""stop_process_group (a child and everything it started end, also when it ignores SIGTERM), vLLM
stopping when whatever started it is killed, and the vLLM command's dtype."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from gateway.stack import VLLMServer, cpu_dtype, load_adapters_now, stop_process_group
from gateway.up import STOP_REQUESTED, _interrupt


def _group(script: str) -> tuple[subprocess.Popen[bytes], list[psutil.Process]]:
    proc = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 10
    while not (children := psutil.Process(proc.pid).children(recursive=True)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc, children


def test_the_child_and_its_children_end() -> None:
    proc, children = _group("sleep 60 & wait")
    stop_process_group(proc)
    assert proc.returncode is not None
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period() -> None:
    proc, _ = _group("trap '' TERM; sleep 60 & wait; sleep 60")
    stop_process_group(proc, grace_s=0.5)
    assert proc.returncode == -9


def test_an_exited_child_is_left_alone() -> None:
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait()
    stop_process_group(proc)  # no error: nothing to signal
    assert proc.returncode == 0


def test_bfloat16_only_where_the_cpu_has_it(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert cpu_dtype(info) == "float32"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_dtype(info) == "auto"
    info.write_text("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert cpu_dtype(info) == "auto"
    assert cpu_dtype(tmp_path / "missing") == "auto"


def test_the_server_command_names_the_dtype(tmp_path: Path) -> None:
    server = VLLMServer(tmp_path, "m", dtype="float32")
    cmd = server.command()
    assert cmd[cmd.index("--dtype") + 1] == "float32"


def fake_vllm(tmp_path: Path) -> Path:
    """A stand-in for the serving environment's python: writes its pid, then sleeps (it ignores
    the vLLM arguments and never answers, so a start waits for it)."""
    fake = tmp_path / "serve-python"
    fake.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'vllm.pid'}\nexec sleep 120\n")
    fake.chmod(0o755)
    return fake


def started_pid(tmp_path: Path) -> psutil.Process:
    pid_file = tmp_path / "vllm.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the fake vLLM never started"
        time.sleep(0.05)
    return psutil.Process(int(pid_file.read_text()))


def ended(proc: psutil.Process, timeout_s: float = 10) -> bool:
    """Gone or a zombie (killed, waiting for an init that may never reap it) within the time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


STARTER = """
import sys, time
from pathlib import Path
from gateway.stack import VLLMServer
tmp = Path(sys.argv[1])
VLLMServer(tmp, "m", python=tmp / "serve-python", log_path=tmp / "log", dtype="float32").start()
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG)")
def test_vllm_stops_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    fake_vllm(tmp_path)
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)])
    child: psutil.Process | None = None
    try:
        child = started_pid(tmp_path)
        assert child.ppid() == starter.pid
        starter.kill()  # kill -9: no handler, no finally runs in the starter
        starter.wait()
        assert ended(child), "vLLM outlived the process that started it"
    finally:
        starter.kill()
        starter.wait()
        if child is not None and child.is_running():
            child.kill()  # only when the test failed: the fake vLLM outlived its starter


UP = """
import sys
import finetune.base_model
finetune.base_model.export_base_model = lambda model_dir: None  # not the unit under test
from gateway.cli import app
app(["up", "--serve-python", sys.argv[1], "--vllm-port", sys.argv[2]])
"""


def test_sigterm_while_gateway_up_waits_for_vllm_stops_vllm_and_exits_cleanly(
    tmp_path: Path,
) -> None:
    fake = fake_vllm(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    up = subprocess.Popen(
        [sys.executable, "-c", UP, str(fake), "1"],  # port 1: nothing answers there
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        child = started_pid(tmp_path)
        up.send_signal(signal.SIGTERM)
        _, err = up.communicate(timeout=60)
        assert up.returncode == 130, err.decode()  # the Ctrl-C exit, not killed by SIGTERM (-15)
        assert ended(child, timeout_s=0.5)  # stopped before `gateway up` exited
    finally:
        up.kill()


def test_a_stop_request_ends_the_wait_for_vllm_even_if_its_interrupt_was_lost(
    tmp_path: Path,
) -> None:
    """The SIGTERM handler's KeyboardInterrupt can land inside an import's callback, where
    Python swallows it; the wait then ends on the flag the handler also sets (seen once: `gateway
    up` kept polling a vLLM that never came after SIGTERM)."""
    server = VLLMServer(tmp_path, "m", port=1, dtype="float32")  # nothing answers on port 1
    stop = threading.Event()
    stop.set()
    with pytest.raises(KeyboardInterrupt):
        server.wait_ready(timeout_s=30, stop=stop)  # without the flag: 30 s, then StackError


def test_a_stop_request_ends_the_adapter_loading_before_the_next_adapter(tmp_path: Path) -> None:
    # the same lost interrupt while `gateway up` loads adapters: no further request is sent
    # (nothing answers on port 1: a request would fail with StackError or ConnectError)
    stop = threading.Event()
    stop.set()
    with pytest.raises(KeyboardInterrupt):
        load_adapters_now("http://127.0.0.1:1", {"a": tmp_path / "a"}, stop=stop)
    with pytest.raises(httpx.ConnectError):  # without the flag: the request is sent
        load_adapters_now("http://127.0.0.1:1", {"a": tmp_path / "a"})


def test_the_signal_handler_sets_the_stop_flag_before_it_interrupts() -> None:
    STOP_REQUESTED.clear()
    try:
        with pytest.raises(KeyboardInterrupt):
            _interrupt(signal.SIGTERM, None)
        assert STOP_REQUESTED.is_set()
    finally:
        STOP_REQUESTED.clear()
