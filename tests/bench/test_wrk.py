"""bench.wrk: the WRK_JSON summary post.lua prints, and the command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.wrk import WrkError, command, parse

WRK_STDOUT = """Running 5s test @ http://127.0.0.1:9/v1/chat/completions
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  500.00us  12.00ms   90.00%
  4000 requests in 5.00s, 1.20MB read
WRK_JSON {"requests": 4000, "duration_us": 5000000, "bytes": 1200000, \
"errors": {"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 0}, \
"latency_us": {"min": 900, "max": 12000, "mean": 2100.5, "p50": 2000, "p90": 2500, \
"p95": 3000, "p99": 4500}}
Requests/sec:    800.00
"""


def test_parse_reads_the_summary_line() -> None:
    result = parse(WRK_STDOUT)
    assert result.requests == 4000
    assert result.duration_s == 5.0
    assert result.rps == 800.0
    assert result.error_count == 4
    assert result.p(50) == 2.0
    assert result.p(99) == 4.5
    assert result.latency_ms["mean"] == pytest.approx(2.1005)


def test_parse_without_summary_fails_with_the_output() -> None:
    with pytest.raises(WrkError, match="no WRK_JSON line"):
        parse("unable to connect to 127.0.0.1:9 Connection refused\n")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by make bench")
def test_command_passes_bodies_after_the_separator(tmp_path: Path) -> None:
    body = tmp_path / "b.json"
    cmd = command(
        "http://x/v1", [body], connections=1, duration_s=2.4, headers={"A": "b"}, threads=4
    )
    assert cmd[1:4] == ["-t1", "-c1", "-d2s"]  # never more threads than connections
    assert cmd[cmd.index("-H") + 1] == "A: b"
    assert cmd[-3:] == ["http://x/v1", "--", str(body)]
    pinned = command("http://x/v1", [body], connections=8, duration_s=5, cpus="0")
    assert pinned[:3] == ["taskset", "-c", "0"]
