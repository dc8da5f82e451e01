"""The lexical screen: which texts the semantic layer is asked about, and its threshold there.

The semantic layer (MiniLM) costs about 200 ms a text on two CPU cores, too much for every
request. Screened, it runs only where the fast layers are unsure: on texts the lexical head
scores at or above ``screen`` (and below its own threshold, where it blocks by itself). The
screen is set so that a chosen ``share`` of benign traffic pays for the second opinion; the
semantic threshold inside it so that what it blocks of benign traffic stays within ``budget``.

Both numbers are calibrated on the train split only (``python -m gateway.detection.train
screen``): the lexical head's out-of-fold scores of benign train rows, and the semantic head's
scores of benign train rows it was not trained on. They hold for one pair of heads, so the file
records both heads' SHA-256 and refuses to load beside other heads.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

RETRAIN = "python -m gateway.detection.train screen"


class Screen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lexical_sha256: str
    semantic_sha256: str
    screen: float = Field(ge=0.0, le=1.0, description="lexical score from which a text is screened")
    threshold: float = Field(ge=0.0, le=1.0, description="semantic threshold for screened texts")
    share: float = Field(description="share of benign calibration texts screened")
    budget: float = Field(description="share of benign calibration texts it may block")
    benign_rows: int = Field(description="benign calibration texts (train split)")

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_screen(path: Path, lexical_head: Path, semantic_head: Path) -> Screen:
    """The screen in ``path``; ValueError when it was calibrated for other head files."""
    screen = Screen.model_validate_json(path.read_bytes())
    for name, head, recorded in (
        ("lexical", lexical_head, screen.lexical_sha256),
        ("semantic", semantic_head, screen.semantic_sha256),
    ):
        if file_sha256(head) != recorded:
            raise ValueError(
                f"{path} was calibrated for another {name} head than {head}: "
                f"recalibrate with `{RETRAIN}`"
            )
    return screen
