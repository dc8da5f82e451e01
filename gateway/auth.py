"""API keys: stored as SHA-256 hashes, compared in constant time.

Keys file (JSON)::

    {"keys": [{"name": "dev", "sha256": "<hex>", "models": ["*"]}]}

``models`` lists the public model names the key may use (``"*"``: all). Optional per key:
``requests_per_minute`` and ``tokens_per_minute`` (gateway/ratelimit.py), and ``admin: true``
for the admin API (docs/fleet.md); an admin key is a key like any other for inference.
Keys are random 256-bit tokens, so an unsalted SHA-256 is a sound verifier and the file leaks
nothing usable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import AuthenticationFailed, ConfigError

KEY_PREFIX = "gw-"


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    models: list[str] = Field(default_factory=lambda: ["*"])
    admin: bool = False
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    keys: list[KeyEntry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's name (never the key) and what it may use."""

    name: str
    models: frozenset[str]
    admin: bool = False
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def may_use(self, model: str) -> bool:
        return "*" in self.models or model in self.models


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore:
    def __init__(self, entries: list[KeyEntry]) -> None:
        self._entries = [
            (
                bytes.fromhex(e.sha256),
                Principal(
                    e.name,
                    frozenset(e.models),
                    e.admin,
                    e.requests_per_minute,
                    e.tokens_per_minute,
                ),
            )
            for e in entries
        ]

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        if not path.exists():
            return cls([])
        try:
            data = KeysFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as exc:
            raise ConfigError(f"invalid keys file {path}: {exc}") from None
        return cls(list(data.keys))

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("malformed Authorization header; expected 'Bearer <key>'")
        digest = hashlib.sha256(token.strip().encode("utf-8")).digest()
        found: Principal | None = None
        for stored, principal in self._entries:  # compare against all: time does not tell which
            if hmac.compare_digest(stored, digest):
                found = principal
        if found is None:
            raise AuthenticationFailed("invalid API key")
        return found


def add_key(
    path: Path,
    name: str,
    models: list[str] | None = None,
    *,
    admin: bool = False,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
) -> str:
    """Create a key, store its hash in ``path`` and return the key (shown once)."""
    current = KeysFile()
    if path.exists():
        current = KeysFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    if any(e.name == name for e in current.keys):
        raise ConfigError(f"a key named {name!r} already exists in {path}")
    key = new_key()
    entry = KeyEntry(
        name=name,
        sha256=hash_key(key),
        models=models or ["*"],
        admin=admin,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
    )
    updated = KeysFile(keys=[*current.keys, entry])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(updated.model_dump_json(indent=2), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return key
