"""Drive load with wrk (C, one thread): on two cores a Python load generator measures itself.

:data:`SCRIPT` POSTs the body files round-robin and its ``done()`` prints one ``WRK_JSON`` line;
:func:`parse` turns wrk's stdout into a :class:`WrkResult`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("post.lua")
MARKER = "WRK_JSON "
PERCENTILES = (50, 90, 95, 99)


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no summary."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: Mapping[str, int]
    latency_ms: Mapping[str, float]
    """``min``, ``mean``, ``max`` and ``p50``/``p90``/``p95``/``p99``, in milliseconds."""

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def p(self, q: int) -> float:
        return self.latency_ms[f"p{q}"]


def parse(stdout: str) -> WrkResult:
    """The summary printed by post.lua's ``done()``."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise WrkError(f"wrk printed no {MARKER.strip()} line:\n{stdout[-2000:]}")
    latency = {k: float(v) / 1000.0 for k, v in data["latency_us"].items()}
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=float(data["duration_us"]) / 1e6,
        errors={k: int(v) for k, v in data["errors"].items()},
        latency_ms=latency,
    )


def command(
    url: str,
    bodies: Sequence[Path],
    *,
    connections: int,
    duration_s: float,
    headers: Mapping[str, str] | None = None,
    threads: int = 1,
    timeout_s: float = 30.0,
    cpus: str | None = None,
) -> list[str]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError("wrk not found: `apt-get install -y -q wrk` (make bench does it)")
    cmd = [
        wrk,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(SCRIPT),
    ]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += [url, "--", *(str(b) for b in bodies)]
    return ["taskset", "-c", cpus, *cmd] if cpus else cmd


def run(
    url: str,
    bodies: Sequence[Path],
    *,
    connections: int,
    duration_s: float,
    headers: Mapping[str, str] | None = None,
    threads: int = 1,
    cpus: str | None = None,
) -> WrkResult:
    cmd = command(
        url,
        bodies,
        connections=connections,
        duration_s=duration_s,
        headers=headers,
        threads=threads,
        cpus=cpus,
    )
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return parse(done.stdout)
