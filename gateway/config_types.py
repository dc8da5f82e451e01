"""Field types shared by our strict configuration models (policies, rule files)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator


def _compiles(v: str) -> str:
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return v


Regex = Annotated[str, AfterValidator(_compiles)]
"""A regular expression, refused at load when it does not compile."""
