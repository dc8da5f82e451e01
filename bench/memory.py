"""Section 4: resident memory of a server's process tree (psutil), at idle and under load;
and its CPU time, which gives CPU per request: a figure far less noisy than latency on a
shared machine."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import psutil

MIB = 1024 * 1024


def _tree_sum(pid: int, measure: Callable[[psutil.Process], float]) -> float:
    """``measure`` summed over a process and its children; processes gone meanwhile count 0."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            total += measure(proc)
        except psutil.NoSuchProcess:
            continue
    return total


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and its children (uvicorn workers, LiteLLM's), in MiB."""
    return _tree_sum(pid, lambda p: p.memory_info().rss) / MIB


@dataclass
class RssSampler:
    """Samples :func:`tree_rss_mib` every ``interval_s`` while in its ``with`` block."""

    pid: int
    interval_s: float = 0.1
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(tree_rss_mib(self.pid))

    @property
    def peak(self) -> float:
        return max(self.samples, default=0.0)

    def __enter__(self) -> RssSampler:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far."""

    def cpu(proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return t.user + t.system

    return _tree_sum(pid, cpu)
