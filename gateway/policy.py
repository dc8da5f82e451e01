"""Policy files: the strict YAML schema security teams edit, and its loader.

A policy lists input and output rules; each rule names a registered check, its settings and its
action. Unknown keys are errors (``extra="forbid"``) reported with the file's line number, so a
typo never silently weakens a policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.checks import build_check
from gateway.errors import ConfigError
from gateway.pipeline import Action, Pipeline, Rule, Stage

M = TypeVar("M", bound=BaseModel)

RuleAction = Literal["block", "redact", "flag", "shadow", "route"]


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    check: str = Field(min_length=1, description="a registered check name")
    settings: dict[str, Any] = Field(default_factory=dict)
    action: RuleAction | None = Field(None, description="what to do when it fires")
    route: str | None = Field(None, description="adapter to send the request to (action: route)")
    on_error: Literal["block", "allow"] = Field(
        "block", description="a check that raises or times out blocks unless 'allow'"
    )
    timeout_ms: int = Field(1000, ge=1, le=60_000)

    @model_validator(mode="after")
    def _route_needs_target(self) -> RuleSpec:
        if (self.action == "route") != (self.route is not None):
            raise ValueError("'route' is required with action: route, and only then")
        return self


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str = ""
    input: list[RuleSpec] = Field(default_factory=list)
    output: list[RuleSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> PolicyFile:
        ids = [r.id for r in [*self.input, *self.output]]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule ids must be unique; repeated: {', '.join(dupes)}")
        return self


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy: its spec and the pipelines built from it, once."""

    spec: PolicyFile
    source: str
    input: Pipeline
    output: Pipeline

    @property
    def name(self) -> str:
        return self.spec.name


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read policy {path}: {exc.strerror}") from None
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    data, root = _parse_yaml(text, source)
    try:
        spec = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, root, source)) from None
    return Policy(
        spec,
        source,
        _pipeline(Stage.INPUT, spec.input, root, source),
        _pipeline(Stage.OUTPUT, spec.output, root, source),
    )


def _parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree (for line numbers), from one parse."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _pipeline(stage: Stage, specs: list[RuleSpec], root: yaml.Node | None, source: str) -> Pipeline:
    rules = []
    for i, spec in enumerate(specs):
        try:
            check = build_check(spec.check, spec.settings)
        except ConfigError as exc:
            line = _line_of(root, (stage.value, i, "settings" if spec.settings else "check"))
            where = f"{source}:{line}" if line else source
            raise ConfigError(f"{where}: rule {spec.id!r}: {exc.message}") from None
        rules.append(
            Rule(
                id=spec.id,
                check_name=spec.check,
                check=check,
                action=Action(spec.action) if spec.action else None,
                route_to=spec.route,
                on_error=spec.on_error,
                timeout_s=spec.timeout_ms / 1000,
            )
        )
    return Pipeline(stage, rules)


def _describe(exc: ValidationError, root: yaml.Node | None, source: str) -> str:
    return describe_validation_error(exc, root, source, "policy")


def load_strict_yaml(path: Path, model: type[M], what: str) -> M:
    """Read ``path`` as ``model`` (an empty file is ``{}``); every problem is a ConfigError
    naming the file, and validation errors name their lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    data, root = _parse_yaml(text, str(path))
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, root, str(path), what)) from None


def describe_validation_error(
    exc: ValidationError, root: yaml.Node | None, source: str, what: str
) -> str:
    """One ``source:line: field.path: message`` line per error (also used for test files)."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = _line_of(root, loc)
        where = ".".join(str(p) for p in loc) or "<top>"
        prefix = f"{source}:{line}" if line else source
        lines.append(f"{prefix}: {where}: {err['msg']}")
    return f"invalid {what}:\n  " + "\n  ".join(lines)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node that ``loc`` reaches."""
    best = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == key), None)
            if match is None:
                break
            best = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            best = node.start_mark.line + 1
        else:
            break
    return best
