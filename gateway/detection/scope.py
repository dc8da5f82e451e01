"""Which segments a detector layer reads, and the threshold for each.

Every user turn is read, not only the last. ``tool`` content (retrieved documents, tool
results) is *indirect* and has its own threshold. System prompts are trusted by default; add
``system`` to ``roles`` to scan them too.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from gateway.checks.roles import RoleScoped
from gateway.pipeline import Action


class ScopedSettings(RoleScoped):
    roles: list[str] = Field(
        default_factory=lambda: ["user", "prompt", "tool"],
        description="roles whose texts are scanned; system is trusted by default",
    )
    indirect_roles: list[str] = Field(
        default_factory=lambda: ["tool"],
        description="roles holding retrieved or tool content, judged by indirect_threshold",
    )
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    indirect_threshold: float = Field(0.5, ge=0.0, le=1.0)
    action: Action = Action.BLOCK

    def threshold_for(self, role: str) -> float:
        return self.indirect_threshold if role in self.indirect_roles else self.threshold


class HeadSettings(ScopedSettings):
    """A learned head's layer: its file, and thresholds that default to the head's own."""

    head_file: Path | None = Field(
        None, description="trained head (.npz); default: the bundled one"
    )
    threshold: float | None = Field(  # type: ignore[assignment]
        None, ge=0.0, le=1.0, description="None: the head's calibrated threshold"
    )
    indirect_threshold: float | None = Field(  # type: ignore[assignment]
        None, ge=0.0, le=1.0, description="None: halfway from the threshold to 1"
    )

    def resolved(self, calibrated: float) -> tuple[float, float]:
        """(direct, indirect) thresholds given the head's calibrated one."""
        direct = self.threshold if self.threshold is not None else calibrated
        indirect = self.indirect_threshold
        return direct, indirect if indirect is not None else (1 + direct) / 2
