"""Typed settings for the gateway.

Read from ``GATEWAY_*`` environment variables (and a ``.env`` file when present). Strict:
an unknown ``GATEWAY_*`` variable is an error, so a typo never silently keeps a default.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AnyHttpUrl, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.errors import ConfigError

ENV_PREFIX = "GATEWAY_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)

    upstream_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8000"), description="vLLM's OpenAI-compatible server"
    )
    upstream_api_key: str | None = None
    upstream_connect_timeout_s: float = Field(3.0, gt=0)
    upstream_read_timeout_s: float = Field(120.0, gt=0, description="max wait between bytes")
    upstream_max_connections: int = Field(256, ge=1)

    base_model: str = Field(
        "smollm2-135m-instruct", description="public name of the base model vLLM serves"
    )
    adapters_dir: Path = Path("adapters")
    upstream_adapters_dir: Path | None = Field(
        None, description="where the upstream sees adapters/ (e.g. a shared volume); default: ours"
    )
    policy_file: Path = Path("policies/default.yaml")
    keys_file: Path = Path(".gateway/keys.json")

    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    adapter_reconcile_interval_s: float = Field(30.0, gt=0)
    log_json: bool = True

    events_enabled: bool = Field(True, description="keep non-allow verdicts (docs/events.md)")
    events_path: Path = Path(".gateway/events.sqlite3")
    events_queue_size: int = Field(10_000, ge=1, description="beyond this, events are dropped")
    events_retention_days: int = Field(30, ge=0, description="0 keeps events forever")

    @field_validator("base_model")
    @classmethod
    def _name_nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("base_model must not be empty")
        return v


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; unknown GATEWAY_* variables fail loudly."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return Settings(**overrides)  # type: ignore[arg-type]
