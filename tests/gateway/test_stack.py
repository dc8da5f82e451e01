"""stop_process_group (a child and everything it started end, also when it ignores SIGTERM) and
the vLLM command's dtype."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil

from gateway.stack import VLLMServer, cpu_dtype, stop_process_group


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
