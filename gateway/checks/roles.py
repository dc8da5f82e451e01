"""Which segments a check reads: settings shared by the checks that choose by role."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pydantic import BaseModel, ConfigDict, Field

from gateway.openai_api import Segment


class RoleScoped(BaseModel):
    """Base of a check's settings: ``roles`` it reads (``system`` is trusted by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: list[str] = Field(
        default_factory=lambda: ["user", "tool", "prompt", "assistant"],
        description="which roles' texts are scanned; system is trusted by default",
    )

    def scanned(self, segments: Sequence[Segment]) -> Iterator[tuple[int, Segment]]:
        """(index, segment) of every non-empty segment in one of ``roles``."""
        roles = set(self.roles)
        for i, seg in enumerate(segments):
            if seg.role in roles and seg.text:
                yield i, seg
