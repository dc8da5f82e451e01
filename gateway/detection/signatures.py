"""Curated signature rules, loaded from YAML: each has an id, family, version, score and regex.

Rules are matched against every :class:`~gateway.detection.views.View` of a text, so an
instruction hidden in base64 or written with Cyrillic look-alikes matches the same rule.
A rule file that does not validate, or a regex that does not compile, is a load error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.config_types import Regex
from gateway.detection.views import Analysed
from gateway.errors import ConfigError


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_.-]+$")
    family: str = Field(min_length=1)
    version: int = Field(ge=1)
    score: float = Field(ge=0.0, le=1.0)
    regex: Regex
    examples: list[str] = Field(min_length=1)
    counterexamples: list[str] = Field(default_factory=list)


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    rules: list[RuleSpec] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Match:
    rule: RuleSpec
    view: str
    """The view it matched in ("original", "base64", "base64+rot13", ...)."""
    matched: str
    decoded: str | None
    """The decoded text that triggered it, when the view was decoded."""


class Signatures:
    def __init__(self, spec: RuleFile) -> None:
        self.spec = spec
        self.compiled = [(r, re.compile(r.regex, re.DOTALL)) for r in spec.rules]
        """Each rule with its pattern, as :meth:`match` searches it (``bench.signature_cost``
        times these)."""

    def match(self, analysed: Analysed) -> list[Match]:
        found: dict[str, Match] = {}
        for view in analysed.views:
            for rule, rx in self.compiled:
                if rule.id in found:
                    continue
                m = rx.search(view.text)
                if m:
                    decoded = view.raw[:500] if view.decoded else None
                    found[rule.id] = Match(rule, view.label, m.group(0)[:200], decoded)
        return list(found.values())


def load_signatures(path: Path) -> Signatures:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Signatures(RuleFile.model_validate(data))
    except OSError as exc:
        raise ConfigError(f"cannot read signature rules {path}: {exc.strerror}") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"invalid signature rules {path}: {exc}") from None
