"""``gateway up``: bring the embedded default stack up, visibly, and take it down on Ctrl-C."""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

from rich.console import Console

from gateway.adapters import Catalog, load_adapters
from gateway.auth import KeyStore, add_key
from gateway.settings import Settings
from gateway.stack import STATE_DIR, StackError, VLLMServer, cpu_dtype, load_adapters_now

console = Console(stderr=True)
DEV_KEY_FILE = STATE_DIR / "dev-key"


def run_stack(
    settings: Settings, vllm_port: int, serve_python: Path, *, vllm_dtype: str | None = None
) -> None:
    import uvicorn

    from gateway.app import create_app
    from gateway.logging import configure_logging

    stop_on_sigterm()
    model_dir = STATE_DIR / "models" / settings.base_model
    with console.status(f"[1/4] base model: exporting SmolLM2 GGUF to {model_dir} (once)"):
        from finetune.base_model import export_base_model

        export_base_model(model_dir)
    console.print(f"[green]✓[/] base model ready in {model_dir}")

    adapters = Catalog(
        settings.base_model, load_adapters(settings.adapters_dir, settings.base_model)
    ).desired()  # shadow and active: what every replica keeps loaded
    server = VLLMServer(
        model_dir,
        settings.base_model,
        port=vllm_port,
        python=serve_python,
        dtype=vllm_dtype or cpu_dtype(),
    )
    with console.status(f"[2/4] starting vLLM on CPU at {server.url} (log: {server.log_path})"):
        server.start()
        try:
            server.wait_ready(stop=STOP_REQUESTED)
        except (StackError, KeyboardInterrupt):
            server.stop()
            raise
    console.print(f"[green]✓[/] vLLM serving {settings.base_model} at {server.url}")
    try:
        with console.status(f"[3/4] loading {len(adapters)} LoRA adapter(s) at run time"):
            load_adapters_now(
                server.url, {n: a.path for n, a in adapters.items()}, stop=STOP_REQUESTED
            )
        if STOP_REQUESTED.is_set():  # after the last adapter: not serving once asked to stop
            raise KeyboardInterrupt
        console.print(f"[green]✓[/] adapters loaded: {', '.join(sorted(adapters)) or 'none'}")
        key = ensure_dev_key(settings)
        configure_logging(json=False)
        # Bind first: a request pasted right after the examples waits in the backlog.
        sock = socket.create_server((settings.host, settings.port), backlog=2048)
        console.print(f"[green]✓[/] [4/4] gateway on http://{settings.host}:{settings.port}")
        print_examples(settings, key, sorted(adapters))
        config = uvicorn.Config(
            create_app(settings), log_level="warning", timeout_keep_alive=settings.keep_alive_s
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        with console.status("stopping vLLM"):
            server.stop()
        console.print("stopped.")


STOP_REQUESTED = threading.Event()
"""Set by SIGINT / SIGTERM: the wait for vLLM and the adapter loading check it, in case the
KeyboardInterrupt the handler raises is swallowed (it can land inside an import's callback,
where Python prints "Exception ignored" and carries on)."""


def _interrupt(signum: int, frame: object) -> None:
    STOP_REQUESTED.set()
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """SIGTERM (``kill``, ``timeout``, a container stop) takes the Ctrl-C path: vLLM is stopped
    however far the start got. (While serving, uvicorn catches both signals itself, shuts the
    gateway down and raises them again, which ends here too.)"""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupt)  # not where it is ignored (`cmd &` in sh)


def ensure_dev_key(settings: Settings) -> str | None:
    """With no keys configured, create a development key and keep it in .gateway/dev-key."""
    if len(KeyStore.load(settings.keys_file)) > 0:
        return DEV_KEY_FILE.read_text().strip() if DEV_KEY_FILE.exists() else None
    key = add_key(settings.keys_file, "dev")
    DEV_KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEV_KEY_FILE.write_text(key + "\n")
    DEV_KEY_FILE.chmod(0o600)
    return key


def print_examples(settings: Settings, key: str | None, adapters: list[str]) -> None:
    base = f"http://{settings.host}:{settings.port}/v1"
    shown = key or "<your key>"
    adapter = adapters[0] if adapters else settings.base_model
    console.print(f"\nAPI key (also in {DEV_KEY_FILE}): [bold]{shown}[/]\n")
    console.print(
        f"curl {base}/chat/completions -H 'Authorization: Bearer {shown}' "
        "-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{settings.base_model}", "messages": [{{"role": "user", '
        '"content": "What is the capital of France?"}]}\'',
        soft_wrap=True,
        highlight=False,
    )
    console.print(
        f"\npython -c \"from openai import OpenAI; c = OpenAI(base_url='{base}', "
        f"api_key='{shown}'); print(c.chat.completions.create(model='{adapter}', "
        "messages=[{'role': 'user', 'content': 'What is the capital of France?'}])"
        '.choices[0].message.content)"\n',
        soft_wrap=True,
        highlight=False,
    )
    console.print("Ctrl-C stops the gateway and vLLM.\n")
