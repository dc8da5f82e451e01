"""The same numeric kernels on every x86-64 host, so the detector's training reproduces.

OpenBLAS (under numpy and scipy), PyTorch, oneDNN and MKL each pick their kernels for the
processor at load: AVX-512 ones on a host that has it, AVX2 ones on one that does not. The
kernels sum in different orders, and a fit that stops at a tolerance (the lexical head's
L-BFGS on 150,000 features) ends elsewhere: the same train split made two lexical heads on two
hosts of this project, coefficients up to 4.5 apart and thresholds 0.976 and 0.979, each
reproduced byte for byte on its own kind of host. Pinned to the AVX2 kernels, which every
x86-64 host since 2015 runs, the fit is the same on both kinds.

The variables are read when the libraries load, so a process that has already imported numpy
cannot set them for itself: :func:`pin` starts the command again with them set (once; a
variable the caller set is kept).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PINNED = {
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's and scipy's OpenBLAS
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (PyTorch's mkldnn)
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility
}
"""The AVX2 kernels of each library, by the environment variable that selects them."""


def has_avx2(cpuinfo: str) -> bool:
    """Whether ``/proc/cpuinfo``'s text lists AVX2 (and FMA, which the Haswell kernels use)."""
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    words = set(flags.split())
    return {"avx2", "fma"} <= words


def pinned(env: Mapping[str, str], machine: str, cpuinfo: str) -> dict[str, str] | None:
    """``env`` with :data:`PINNED` added where unset; None where there is nothing to pin to
    (not x86-64 or no AVX2) or nothing is missing."""
    if machine not in ("x86_64", "AMD64") or not has_avx2(cpuinfo):
        return None
    missing = {k: v for k, v in PINNED.items() if k not in env}
    return {**env, **missing} if missing else None


def pin(argv: Sequence[str]) -> None:
    """Start ``python argv...`` again in place, with the AVX2 kernels pinned, unless they
    already are (or cannot be, see :func:`pinned`)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    env = pinned(os.environ, platform.machine(), cpuinfo)
    if env is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *argv], env)


def describe() -> str:
    """The kernels this process runs: OpenBLAS's per library, PyTorch's capability."""
    from threadpoolctl import threadpool_info

    with contextlib.suppress(ImportError):  # scipy's own OpenBLAS, which the fits use too
        import scipy.linalg  # noqa: F401
    parts = [
        f"{Path(str(i.get('filepath', '?'))).name.split('-')[0]}: {i.get('architecture')}"
        for i in threadpool_info()
        if i.get("internal_api") == "openblas"
    ]
    try:
        import torch

        parts.append(f"torch: {torch.backends.cpu.get_cpu_capability()}")
    except ImportError:
        pass
    return ", ".join(parts) or "no OpenBLAS loaded"
