"""stop_process_group: a child and everything it started end, also when it ignores SIGTERM."""

from __future__ import annotations

import subprocess
import time

import psutil

from gateway.stack import stop_process_group


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
