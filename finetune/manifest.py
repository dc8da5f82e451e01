"""The adapter folder's ``manifest.yaml``, written through the gateway's own model and writer
(:func:`gateway.adapters.write_manifest`: validated, sha256 of the weights, atomic), so the
registry accepts exactly what the loop produces.

The loop keeps its lineage in the manifest's free-form ``evaluation`` mapping: ``dataset``
(path, sha256), ``training`` (steps, loss, time), then ``eval`` (the figures) and ``gate``
(thresholds and decision) once ``finetune eval`` has run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.adapters import AdapterManifest, Status, read_manifest, write_manifest


def write_candidate(
    folder: Path,
    *,
    name: str,
    base_model: str,
    description: str,
    evaluation: dict[str, Any],
) -> AdapterManifest:
    """A new adapter's manifest: status ``candidate`` (registered, not served)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ")
    return write_manifest(
        folder,
        {
            "name": name,
            "base_model": base_model,
            "description": description,
            "created_by": f"finetune train (run {stamp})",
            "evaluation": evaluation,
            "status": Status.CANDIDATE.value,
        },
    )


def update(
    folder: Path, *, evaluation: dict[str, Any] | None = None, status: Status | None = None
) -> AdapterManifest:
    """Merge ``evaluation`` into the manifest's and/or change its status; sha256 re-checked."""
    current = read_manifest(folder)
    data = current.model_dump(mode="json")
    if evaluation:
        data["evaluation"] = {**current.evaluation, **evaluation}
    if status is not None:
        data["status"] = status.value
    return write_manifest(folder, data)
