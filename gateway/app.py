"""``create_app(settings)``: the Starlette app. Everything long-lived is built once here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from opentelemetry.trace import Tracer, TracerProvider
from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway.adapters import Catalog, load_adapters
from gateway.admin import ADMIN_ROUTES
from gateway.audit import Audit
from gateway.auth import KeyStore
from gateway.backends.factory import build_fleet
from gateway.errors import install_error_handlers
from gateway.events import open_events
from gateway.lifecycle import AdapterLifecycle
from gateway.metrics import Metrics
from gateway.middleware import RequestContext
from gateway.pipeline import RuleOutcome, Stage
from gateway.policy import Policy, load_policy
from gateway.policy_binding import load_bindings
from gateway.policy_watch import PolicyReloader
from gateway.policy_watch import watch_policy as watch_policy_file
from gateway.ratelimit import RateLimits
from gateway.reconcile import reconcile_forever
from gateway.routes import ROUTES
from gateway.settings import Settings
from gateway.state import Gateway, PolicyHolder
from gateway.tracing import build_tracer


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    keys: KeyStore | None = None,
    policy: Policy | None = None,
    reconcile: bool = True,
    watch_policy: bool = True,
    tracer_provider: TracerProvider | None = None,
) -> Starlette:
    """Build the gateway. ``transport`` is the test seam for the upstream (httpx.MockTransport)."""
    metrics = Metrics()
    tracer = build_tracer(tracer_provider)
    catalog = Catalog(
        settings.base_model, load_adapters(settings.adapters_dir, settings.base_model)
    )
    policies = PolicyHolder(_observed(policy or load_policy(settings.policy_file), metrics, tracer))
    bindings = load_bindings(settings.policy_bindings_file, lambda p: _observed(p, metrics, tracer))
    backend = build_fleet(settings, transport)  # every vLLM replica; fallbacks (docs/fleet.md)
    lifecycle = AdapterLifecycle(
        catalog, backend, metrics, settings.adapters_dir, settings.upstream_adapters_dir
    )
    redis = settings.ratelimit_redis_url
    gateway = Gateway(
        settings=settings,
        keys=keys if keys is not None else KeyStore.load(settings.keys_file),
        catalog=catalog,
        policies=policies,
        backend=backend,
        metrics=metrics,
        audit=Audit(),
        tracer=tracer,
        events=open_events(settings, metrics),
        lifecycle=lifecycle,
        limits=RateLimits(redis.get_secret_value() if redis else None),
        bindings=bindings,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(gateway.events.start)  # a store that cannot open fails start
        task = None
        if reconcile:  # health probes + adapters on every replica
            task = asyncio.create_task(
                reconcile_forever(lifecycle, settings.adapter_reconcile_interval_s)
            )
        watcher = None
        if watch_policy and policy is None:  # hot reload only what was loaded from the file
            reloader = PolicyReloader(
                settings.policy_file, policies, metrics, lambda p: _observed(p, metrics, tracer)
            )
            watcher = asyncio.create_task(watch_policy_file(reloader))
        bound = [  # every bound policy file reloads like the default one
            asyncio.create_task(
                watch_policy_file(
                    PolicyReloader(path, holder, metrics, lambda p: _observed(p, metrics, tracer))
                )
            )
            for path, holder in (bindings.holders.items() if watch_policy else ())
        ]
        try:
            yield
        finally:
            for background in (task, watcher, *bound):
                if background is not None:
                    background.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await background
            await backend.aclose()
            await gateway.limits.aclose()
            await asyncio.to_thread(gateway.events.close)  # writes everything still queued

    app = Starlette(
        routes=[*ROUTES, *ADMIN_ROUTES],
        middleware=[Middleware(RequestContext, metrics=metrics)],
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.state.gateway = gateway
    return app


def _observed(policy: Policy, metrics: Metrics, tracer: Tracer | None = None) -> Policy:
    """Attach metric recording to a policy's pipelines."""

    def observe(outcome: RuleOutcome, stage: Stage) -> None:
        rule = outcome.rule.id
        metrics.check_duration.labels(stage.value, rule).observe(outcome.duration_s)
        if outcome.failed:
            metrics.check_failures.labels(stage.value, rule).inc()
        families = {f.family or "none" for f in outcome.verdict.findings} or {"none"}
        for family in families:
            metrics.check_verdicts.labels(
                policy.name, stage.value, rule, outcome.verdict.action.value, family
            ).inc()

    return Policy(
        policy.spec,
        policy.source,
        policy.input.with_observer(observe, tracer),
        policy.output.with_observer(observe, tracer),
    )
