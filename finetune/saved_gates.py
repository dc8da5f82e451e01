"""The fitted gates of ``method: probe_gate`` (:mod:`finetune.probe_gate`), and their file.

Reading the base model and fitting the probes take minutes on a CPU, so the gates are kept
beside the checkpoints (``output_dir/checkpoints/probe_gate.npz``) with a fingerprint of what
they were fitted to: the dataset, the base model's files, the probe_gate settings and the rows
read. A resumed run reuses them when the fingerprint matches; ``--fresh`` deletes them with the
checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.hashing import file_sha256

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from finetune.train_config import TrainConfig

    Matrix = npt.NDArray[np.float32]

CACHE = "probe_gate.npz"
"""The fitted gates, in ``output_dir/checkpoints`` (so ``--fresh`` removes them)."""


@dataclass(frozen=True)
class Gate:
    """One layer's gate: ``row`` (probe minus threshold) and the constant direction ``one``."""

    layer: int
    row: Matrix
    one: Matrix
    attacks_open: float
    benign_open: float
    """the share of training positives / negatives where the gate is open (row · x > 0)"""


def fingerprint(cfg: TrainConfig) -> str:
    """What the fitted gates depend on: the dataset, the base model's weights and configuration,
    the probe_gate settings and the rows read (seed, ``max_examples``, ``max_seq_len``)."""
    model_files = sorted(
        p for p in Path(cfg.base_model).iterdir() if p.suffix in (".json", ".safetensors")
    )
    inputs = {
        "dataset": file_sha256(cfg.dataset),
        "base_model": {p.name: file_sha256(p) for p in model_files if p.is_file()},
        "probe_gate": cfg.probe_gate.model_dump(),
        "seed": cfg.seed,
        "max_examples": cfg.train.max_examples,
        "max_seq_len": cfg.train.max_seq_len,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def save_gates(path: Path, key: str, gates: Sequence[Gate], counts: dict[str, int]) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "fingerprint": key,
        "counts": counts,
        "open": {str(g.layer): [g.attacks_open, g.benign_open] for g in gates},
    }
    arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta))}
    arrays |= {f"row_{g.layer}": g.row for g in gates} | {f"one_{g.layer}": g.one for g in gates}
    # written aside and moved into place: under DDP every process fits and saves the same gates
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    with part.open("wb") as fh:  # a file object: np.savez would append ".npz" to a str path
        np.savez(fh, **arrays)
    os.replace(part, path)


def load_gates(
    path: Path, key: str, layers: Sequence[int]
) -> tuple[list[Gate], dict[str, int]] | None:
    """The gates saved at ``path`` if they were fitted to the inputs ``key`` names, else None."""
    import numpy as np

    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as saved:
        meta = json.loads(str(saved["meta"]))
        if meta["fingerprint"] != key:
            return None
        gates = [
            Gate(
                layer=layer,
                row=saved[f"row_{layer}"],
                one=saved[f"one_{layer}"],
                attacks_open=meta["open"][str(layer)][0],
                benign_open=meta["open"][str(layer)][1],
            )
            for layer in layers
        ]
    return gates, {k: int(v) for k, v in meta["counts"].items()}
