"""Typed settings for the gateway.

Read from ``GATEWAY_*`` environment variables (and a ``.env`` file when present). Strict:
an unknown ``GATEWAY_*`` variable is an error, so a typo never silently keeps a default.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.backends.litellm import FallbackRoute
from gateway.errors import ConfigError

ENV_PREFIX = "GATEWAY_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    keep_alive_s: int = Field(
        75,
        gt=0,
        description="idle client connections are closed after this; keep it above clients' "
        "pool expiry (httpx/openai: 5 s), or a request sent on a closing connection fails",
    )

    upstream_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8000"), description="vLLM's OpenAI-compatible server"
    )
    upstream_urls: list[AnyHttpUrl] = Field(
        default_factory=list, description="several vLLM replicas (docs/fleet.md); replaces the one"
    )
    upstream_failure_threshold: int = Field(3, ge=1, description="failures in a row: breaker open")
    upstream_breaker_reset_s: float = Field(5.0, gt=0, description="open -> one trial request")
    fallback_routes: dict[str, FallbackRoute] = Field(
        default_factory=dict, description="model -> litellm route when no replica can answer"
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
    policy_bindings_file: Path | None = Field(
        None, description="policies by API key / model (docs/policies.md); None: default only"
    )
    keys_file: Path = Path(".gateway/keys.json")

    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    adapter_reconcile_interval_s: float = Field(
        5.0, gt=0, description="health probe + adapter reconcile per replica (1 s while pending)"
    )
    admin_port: int | None = Field(
        None, ge=1, le=65535, description="serve /admin only here (and nothing else here)"
    )
    ratelimit_redis_url: SecretStr | None = Field(
        None, description="redis://host:port/db shared by gateway replicas; default: in process"
    )
    log_json: bool = True

    events_enabled: bool = Field(True, description="keep non-allow verdicts (docs/events.md)")
    events_path: Path = Path(".gateway/events.sqlite3")
    events_url: SecretStr | None = Field(
        None, description="postgresql://... stores events there instead of events_path"
    )
    events_queue_size: int = Field(10_000, ge=1, description="beyond this, events are dropped")
    events_retention_days: int = Field(30, ge=0, description="0 keeps events forever")

    def upstreams(self) -> list[str]:
        """The vLLM replicas: ``upstream_urls`` when given, else ``upstream_url``."""
        return [str(u).rstrip("/") for u in self.upstream_urls or [self.upstream_url]]

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
