"""Tables, ratios and the issue's targets, as pure functions over measured numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.wrk import WrkResult

DIRECT = "direct"
GATEWAY_OFF = "gateway, guards off"
GATEWAY_DEFAULT = "gateway, default policy"
LITELLM = "LiteLLM proxy"


@dataclass(frozen=True, slots=True)
class Cell:
    """One wrk run: a target at one concurrency, streaming or not."""

    target: str
    stream: bool
    connections: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float | None = None
    """The server's own CPU time per request (its process tree; None for the direct path)."""

    @classmethod
    def of(
        cls,
        target: str,
        stream: bool,
        connections: int,
        result: WrkResult,
        cpu_s: float | None = None,
    ) -> Cell:
        per_request = (
            1000 * cpu_s / result.requests if cpu_s is not None and result.requests else None
        )
        return cls(
            target,
            stream,
            connections,
            result.requests,
            result.error_count,
            result.rps,
            result.p(50),
            result.p(99),
            per_request,
        )


@dataclass(frozen=True, slots=True)
class Overhead:
    """A cell set against the direct path (and LiteLLM's cell) of the same mode and concurrency."""

    cell: Cell
    added_p50_ms: float
    added_p99_ms: float
    rps_vs_direct: float
    rps_vs_litellm: float | None
    added_p99_vs_litellm: float | None
    """Our added p99 as a fraction of LiteLLM's added p99 (lower is better)."""


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def compare(cells: Sequence[Cell]) -> list[Overhead]:
    by_key = {(c.target, c.stream, c.connections): c for c in cells}
    out = []
    for cell in cells:
        direct = by_key.get((DIRECT, cell.stream, cell.connections))
        if direct is None:
            continue
        litellm = by_key.get((LITELLM, cell.stream, cell.connections))
        added_p99 = cell.p99_ms - direct.p99_ms
        lite_added_p99 = litellm.p99_ms - direct.p99_ms if litellm is not None else None
        out.append(
            Overhead(
                cell,
                cell.p50_ms - direct.p50_ms,
                added_p99,
                _ratio(cell.rps, direct.rps),
                _ratio(cell.rps, litellm.rps) if litellm is not None else None,
                _ratio(max(added_p99, 0.0), lite_added_p99)
                if lite_added_p99 is not None and lite_added_p99 > 0
                else None,
            )
        )
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The same table for a terminal: columns padded to width."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        + [fmt.format(*r) for r in rows]
    )


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


OVERHEAD_HEADER = (
    "target",
    "mode",
    "conc.",
    "req/s",
    "p50 ms",
    "p99 ms",
    "added p50 ms",
    "added p99 ms",
    "req/s vs direct",
    "req/s vs LiteLLM",
    "added p99 vs LiteLLM",
    "server CPU ms/req",
    "errors",
)


def overhead_rows(rows: Sequence[Overhead]) -> list[list[str]]:
    out = []
    for o in rows:
        c = o.cell
        direct = c.target == DIRECT
        out.append(
            [
                c.target,
                "stream" if c.stream else "json",
                str(c.connections),
                f"{c.rps:,.0f}",
                f"{c.p50_ms:.2f}",
                f"{c.p99_ms:.2f}",
                "-" if direct else f"{o.added_p50_ms:+.2f}",
                "-" if direct else f"{o.added_p99_ms:+.2f}",
                "-" if direct else _x(o.rps_vs_direct),
                "-" if direct or c.target == LITELLM else _x(o.rps_vs_litellm),
                "-" if direct or c.target == LITELLM else _x(o.added_p99_vs_litellm),
                "-" if c.cpu_ms_per_request is None else f"{c.cpu_ms_per_request:.2f}",
                str(c.errors),
            ]
        )
    return out


@dataclass(frozen=True, slots=True)
class Target:
    goal: str
    measured: str
    met: bool | None
    """None: not measured in this run, or the measurement cannot decide (noise)."""

    def row(self) -> list[str]:
        unknown = "not measured" if self.measured == "-" else "inconclusive"
        verdict = {True: "met", False: "**not met**", None: unknown}[self.met]
        return [self.goal, self.measured, verdict]


def overhead_targets(rows: Sequence[Overhead]) -> list[Target]:
    """Guards off: added p99 ≤ 1 ms at 1, ≤ 10 ms at 64; ≥ 10x LiteLLM and > 1,100 req/s at 64."""
    found = {(o.cell.target, o.cell.stream, o.cell.connections): o for o in rows}
    targets = []
    for conc, limit in ((1, 1.0), (64, 10.0)):
        for stream in (False, True):
            o = found.get((GATEWAY_OFF, stream, conc))
            mode = "stream" if stream else "json"
            goal = f"guards off, {mode}: added p99 ≤ {limit:g} ms at concurrency {conc}"
            if o is None:
                targets.append(Target(goal, "-", None))
            else:
                measured = f"{o.added_p99_ms:+.2f} ms"
                if o.added_p99_ms < 0:  # the gateway cannot be faster than the direct path
                    measured += " (the direct path's p99 was the slower one: noise)"
                    targets.append(Target(goal, measured, None))
                else:
                    targets.append(Target(goal, measured, o.added_p99_ms <= limit))
    for stream in (False, True):
        o = found.get((GATEWAY_OFF, stream, 64))
        mode = "stream" if stream else "json"
        goal = f"guards off, {mode}: ≥ 10x LiteLLM's req/s at concurrency 64"
        if o is None or o.rps_vs_litellm is None:
            targets.append(Target(goal, "-", None))
        else:
            measured = f"{o.rps_vs_litellm:.1f}x ({o.cell.rps:,.0f} req/s)"
            targets.append(Target(goal, measured, o.rps_vs_litellm >= 10))
        goal = f"guards off, {mode}: > 1,100 req/s at concurrency 64"
        if o is None:
            targets.append(Target(goal, "-", None))
        else:
            targets.append(Target(goal, f"{o.cell.rps:,.0f} req/s", o.cell.rps > 1100))
    return targets


def threshold_target(goal: str, value: float | None, limit: float, unit: str) -> Target:
    """``value`` ≤ ``limit`` (None: not measured)."""
    if value is None:
        return Target(goal, "-", None)
    return Target(goal, f"{value:.2f} {unit}", value <= limit)


def adapter_target(base_tps: float | None, spread_tps: float | None) -> Target:
    goal = "adapters: spread traffic ≥ 90% of base-only tokens/s"
    if base_tps is None or spread_tps is None or base_tps <= 0:
        return Target(goal, "-", None)
    share = spread_tps / base_tps
    return Target(goal, f"{100 * share:.0f}%", share >= 0.9)


def percentiles(samples: Sequence[float], qs: Sequence[float]) -> list[float]:
    """Linear-interpolated percentiles (numpy's default), without numpy."""
    if not samples:
        return [float("nan") for _ in qs]
    data = sorted(samples)
    out = []
    for q in qs:
        pos = (len(data) - 1) * q / 100
        lo = int(pos)
        hi = min(lo + 1, len(data) - 1)
        out.append(data[lo] + (data[hi] - data[lo]) * (pos - lo))
    return out
