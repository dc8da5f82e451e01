"""The detector's training pins the AVX2 kernels on x86-64 hosts, so a fit is the same on hosts
with and without AVX-512 (gateway/detection/kernels.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.detection.kernels import PINNED, has_avx2, pinned

AVX2 = "processor : 0\nflags : fpu sse sse2 avx fma avx2 avx512f\n"
NO_AVX2 = "processor : 0\nflags : fpu sse sse2 avx\n"


def test_an_avx2_host_gets_every_kernel_pinned() -> None:
    env = pinned({"PATH": "/bin"}, "x86_64", AVX2)
    assert env == {"PATH": "/bin", **PINNED}


def test_a_variable_the_caller_set_is_kept() -> None:
    env = pinned({"OPENBLAS_CORETYPE": "Zen"}, "x86_64", AVX2)
    assert env is not None and env["OPENBLAS_CORETYPE"] == "Zen"
    assert env["ATEN_CPU_CAPABILITY"] == "avx2"


def test_nothing_to_pin_when_pinned_already_or_not_possible() -> None:
    assert pinned(dict(PINNED), "x86_64", AVX2) is None  # already: no second start
    assert pinned({}, "x86_64", NO_AVX2) is None
    assert pinned({}, "aarch64", AVX2) is None
    assert not has_avx2("flags : avx2\n")  # the Haswell kernels need FMA too


CPUINFO = Path("/proc/cpuinfo")


@pytest.mark.skipif(
    platform.machine() != "x86_64"
    or not CPUINFO.exists()
    or not has_avx2(CPUINFO.read_text(encoding="utf-8", errors="replace")),
    reason="pinning applies to x86-64 hosts with AVX2",
)
def test_the_training_command_runs_on_the_avx2_kernels() -> None:
    env = {k: v for k, v in os.environ.items() if k not in PINNED}
    out = subprocess.run(
        [sys.executable, "-m", "gateway.detection.train", "kernels"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "Haswell" in out and "SkylakeX" not in out, out
    if "torch:" in out:
        assert "torch: AVX2" in out, out
