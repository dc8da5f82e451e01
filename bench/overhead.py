"""Section 1 (and the load half of section 4): the same stub upstream called directly, through
the gateway with guards off and with the default policy, and through LiteLLM proxy.

Every target gets a short warm-up, then one wrk run per (mode, concurrency). The server's
process-tree RSS is sampled at idle and during the runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from bench import procs, wrk
from bench.memory import RssSampler, tree_cpu_s, tree_rss_mib
from bench.report import DIRECT, GATEWAY_DEFAULT, GATEWAY_OFF, LITELLM, Cell
from bench.stub import MODEL
from gateway.auth import add_key

CHAT = "/v1/chat/completions"
PROMPT = "What is the capital of France?"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where processes run. ``None`` everywhere: unpinned, the kernel schedules."""

    server: str | None = None
    stub: str | None = None
    wrk: str | None = None


PINNED = Layout(server="1", stub="0", wrk="0")


@dataclass(frozen=True, slots=True)
class MemoryRow:
    target: str
    idle_mib: float
    load_mib: float
    after_mib: float


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    headers: dict[str, str]
    pid: int | None


def write_bodies(work: Path) -> dict[bool, Path]:
    out = {}
    for stream in (False, True):
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 16,
            "stream": stream,
        }
        path = work / ("body-stream.json" if stream else "body.json")
        path.write_bytes(orjson.dumps(body))
        out[stream] = path
    return out


def run(
    work: Path,
    *,
    duration_s: float,
    concurrency: Sequence[int],
    layout: Layout,
    with_litellm: bool,
    log: Callable[[str], None],
    gateway_env: Mapping[str, str] | None = None,
) -> tuple[list[Cell], list[MemoryRow]]:
    bodies = write_bodies(work)
    key_file = work / "keys.json"
    key_file.unlink(missing_ok=True)
    key = add_key(key_file, "bench")
    cells: list[Cell] = []
    memory: list[MemoryRow] = []
    with procs.stub(work, layout.stub) as stub:
        upstream = stub.url

        @contextmanager
        def gateway(name: str, policy: Path | None) -> Iterator[Target]:
            server = procs.gateway(work, name.replace(" ", "_").replace(",", ""), upstream,
                                   policy, key_file, layout.server, gateway_env)  # fmt: skip
            with server:
                yield Target(name, server.url, {"Authorization": f"Bearer {key}"}, server.pid)

        @contextmanager
        def litellm() -> Iterator[Target]:
            server, master = procs.litellm(work, upstream, layout.server)
            with server:
                yield Target(LITELLM, server.url, {"Authorization": f"Bearer {master}"}, server.pid)

        @contextmanager
        def direct() -> Iterator[Target]:
            yield Target(DIRECT, upstream, {}, None)

        starts: list[Callable[[], AbstractContextManager[Target]]] = [
            direct,
            lambda: gateway(GATEWAY_OFF, None),
            lambda: gateway(GATEWAY_DEFAULT, procs.REPO / "policies" / "default.yaml"),
        ]
        if with_litellm:
            starts.append(litellm)
        for start in starts:
            with start() as target:
                log(f"overhead: {target.name}")
                new_cells, mem = _measure(target, bodies, duration_s, concurrency, layout)
                cells += new_cells
                if mem is not None:
                    memory.append(mem)
    return cells, memory


def _measure(
    target: Target,
    bodies: dict[bool, Path],
    duration_s: float,
    concurrency: Sequence[int],
    layout: Layout,
) -> tuple[list[Cell], MemoryRow | None]:
    url = target.url + CHAT
    idle = tree_rss_mib(target.pid) if target.pid is not None else 0.0
    for stream in (False, True):  # warm-up: imports, pools, caches; not recorded
        headers = {**target.headers, "Content-Type": "application/json"}
        first = httpx.post(url, content=bodies[stream].read_bytes(), headers=headers, timeout=120)
        if first.status_code != 200:
            raise wrk.WrkError(f"{target.name}: HTTP {first.status_code}: {first.text[:500]}")
        warm = wrk.run(url, [bodies[stream]], connections=16, duration_s=2,
                       headers=target.headers, cpus=layout.wrk)  # fmt: skip
        if warm.error_count > warm.requests // 2:
            raise wrk.WrkError(f"{target.name}: warm-up failed ({warm})")
    cells = []
    sampler = RssSampler(target.pid) if target.pid is not None else None
    with sampler if sampler is not None else nullcontext():
        for stream in (False, True):
            for conc in concurrency:
                cpu = tree_cpu_s(target.pid) if target.pid is not None else None
                result = wrk.run(url, [bodies[stream]], connections=conc, duration_s=duration_s,
                                 headers=target.headers, cpus=layout.wrk)  # fmt: skip
                if cpu is not None and target.pid is not None:
                    cpu = tree_cpu_s(target.pid) - cpu
                cells.append(Cell.of(target.name, stream, conc, result, cpu))
    if sampler is None or target.pid is None:
        return cells, None
    return cells, MemoryRow(target.name, idle, sampler.peak, tree_rss_mib(target.pid))
