"""Hot reload: watch the policy file and swap in each new valid version, atomically.

The watcher follows the file's *directory* (``watchfiles.awatch``), because editors save by
writing a temporary file and renaming it over the old one, and Kubernetes ConfigMaps swap a
symlink; both replace the file rather than write to it. On any change there it re-reads the
file and acts only when the content differs from what it last saw:

- valid: the new policy is built (checks compiled, settings validated), wrapped like the first
  one (metrics) and swapped in with one assignment; requests in flight keep the version they
  took at their start. Logged as ``policy_reloaded``, counted as ``result="ok"``.
- invalid or unreadable: the last good policy stays; the error (with line numbers) is logged as
  ``policy_reload_failed`` and counted as ``result="error"``. The same bad content is reported
  once, not on every unrelated change in the directory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import structlog
from watchfiles import awatch

from gateway.errors import ConfigError
from gateway.metrics import Metrics
from gateway.policy import Policy, parse_policy
from gateway.state import PolicyHolder

_log = structlog.get_logger("gateway.policy")


class PolicyReloader:
    """Reload logic without the watching, so it can be driven and tested directly."""

    def __init__(
        self,
        path: Path,
        holder: PolicyHolder,
        metrics: Metrics,
        wrap: Callable[[Policy], Policy] = lambda p: p,
    ) -> None:
        self.path = path
        self.holder = holder
        self.metrics = metrics
        self.wrap = wrap
        self._seen = self._digest()

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except OSError:
            return None

    def _digest(self, text: str | None = None) -> str | None:
        text = self._read() if text is None else text
        return None if text is None else hashlib.sha256(text.encode()).hexdigest()

    def reload(self) -> bool | None:
        """Re-read the file: True swapped, False rejected, None unchanged."""
        text = self._read()
        digest = self._digest(text) if text is not None else "missing"
        if digest == self._seen:
            return None
        self._seen = digest
        try:
            if text is None:
                raise ConfigError(f"cannot read policy {self.path}")
            policy = parse_policy(text, str(self.path))
        except Exception as exc:  # any failure (e.g. RecursionError on hostile YAML) keeps the
            # last good policy; letting it escape would end the watcher and every later reload
            self.metrics.policy_reloads.labels("error").inc()
            _log.error(
                "policy_reload_failed",
                path=str(self.path),
                error=exc.message
                if isinstance(exc, ConfigError)
                else f"{type(exc).__name__}: {exc}",
                kept=self.holder.current.name,
            )
            return False
        self.holder.swap(self.wrap(policy))
        self.metrics.policy_reloads.labels("ok").inc()
        _log.info("policy_reloaded", path=str(self.path), policy=policy.name)
        return True


async def watch_policy(reloader: PolicyReloader, *, force_polling: bool | None = None) -> None:
    """Run until cancelled: reload on every change in the policy file's directory."""
    # absolute(), not resolve(): a Kubernetes ConfigMap mount is a symlink into a timestamped
    # folder that the kubelet replaces on every update; watch the mount itself.
    directory = reloader.path.absolute().parent
    async for _changes in awatch(
        directory, debounce=400, step=50, recursive=False, force_polling=force_polling
    ):
        reloader.reload()
