"""Prometheus metrics, one registry per app (so tests can build many apps).

Labels stay bounded: routes are the fixed endpoint templates, models are catalog names or
``unknown``, rules are policy rule ids. No user text and no key values ever become labels.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_CHECK = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_requests",
            "Requests by route, model and HTTP status",
            ["route", "model", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "gateway_request_duration_seconds",
            "Time until the response was complete",
            ["route", "model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.check_duration = Histogram(
            "gateway_check_duration_seconds",
            "Time per guard rule",
            ["stage", "rule"],
            buckets=_CHECK,
            registry=r,
        )
        self.check_verdicts = Counter(
            "gateway_check_verdicts",
            "Guard verdicts by rule, action and attack family",
            ["policy", "stage", "rule", "action", "family"],
            registry=r,
        )
        self.check_failures = Counter(
            "gateway_check_failures",
            "Guard rules that raised or timed out",
            ["stage", "rule"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_duration_seconds",
            "Upstream time (to headers for streams)",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors",
            "Upstream failures by kind",
            ["kind"],
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "gateway_time_to_first_token_seconds",
            "Time to the first streamed token",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.stream_cutoffs = Counter(
            "gateway_stream_cutoffs",
            "Streams cut off by an output rule",
            ["rule"],
            registry=r,
        )
        self.adapter_loads = Counter(
            "gateway_adapter_loads",
            "Adapter loads into the upstream by result",
            ["adapter", "result"],
            registry=r,
        )
        self.tokens = Counter(
            "gateway_tokens",
            "Tokens by model and direction (input: prompt, output: completion), from vLLM's usage",
            ["model", "direction"],
            registry=r,
        )
        self.in_flight = Gauge(
            "gateway_requests_in_flight",
            "Requests being served",
            registry=r,
        )
        self.policy_reloads = Counter(
            "gateway_policy_reloads",
            "Policy file reloads by result (error: the last good policy was kept)",
            ["result"],
            registry=r,
        )
        for result in ("ok", "error"):  # bounded label sets exist from the start, at 0
            self.policy_reloads.labels(result)
        self.event_queue_depth = Gauge(
            "gateway_event_queue_depth",
            "Events waiting for the event store's writer",
            registry=r,
        )
        self.events_written = Counter(
            "gateway_events_written",
            "Events committed to the event store",
            registry=r,
        )
        self.events_dropped = Counter(
            "gateway_events_dropped",
            "Events not stored, by reason (queue_full, write_failed, closed)",
            ["reason"],
            registry=r,
        )
        for reason in ("queue_full", "write_failed", "closed"):
            self.events_dropped.labels(reason)
