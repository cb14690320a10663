"""Prometheus metrics of the gateway, derived from the exchange records it logs.

One place counts everything (``GatewayMetrics.observe``), from the same record
that goes to the log, so the metrics and the log cannot disagree.

>>> m = GatewayMetrics()
>>> m.observe({"endpoint": "/v1/chat/completions", "gateway": {"action": "allow"},
...            "response": {"status": 200, "latency_ms": 12.5}})
>>> b'distillguard_requests_total{endpoint="/v1/chat/completions",status="200"} 1.0' in m.render(0)
True
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from distillguard.gateway.pauses import PauseMonitor

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # one per app: tests and several apps never collide
        self.requests = Counter("distillguard_requests", "Requests by endpoint and status.",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("distillguard_request_latency_seconds", "Time to the end of the exchange.",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.decisions = Counter("distillguard_decisions", "Policy decisions by action.", ["action"],
                                 registry=self.registry)
        self.upstream_errors = Counter("distillguard_upstream_errors", "Upstream timeouts and failures.",
                                       ["code"], registry=self.registry)
        self.interrupted = Counter("distillguard_interrupted_streams", "Streams the client hung up on.",
                                   registry=self.registry)
        self.log_queue = Gauge("distillguard_log_queue_depth", "Exchange records not yet on disk.",
                               registry=self.registry)
        self.live_flagged = Gauge("distillguard_live_flagged_accounts",
                                  "Accounts moved to monitor/throttle by live thresholds since the last policy.",
                                  registry=self.registry)
        self.live_dropped = Gauge("distillguard_live_dropped_observations",
                                  "Requests left out of the live windows because the live signals fell behind.",
                                  registry=self.registry)
        self.log_healthy = Gauge("distillguard_log_healthy", "1 while the exchange log is written, 0 while not.",
                                 registry=self.registry)
        self.policy_bad_records = Gauge("distillguard_policy_bad_records",
                                        "Records of the loaded policy file that were reported and skipped.",
                                        registry=self.registry)
        self.policy_records = Gauge("distillguard_policy_records", "Valid records of the loaded policy file.",
                                    registry=self.registry)
        self.policy_expired = Gauge("distillguard_policy_expired_records",
                                    "Records of the loaded policy file that have expired (ignored): a stale policy.",
                                    registry=self.registry)
        self.log_write_errors = Gauge("distillguard_log_write_errors", "Failed log flushes since start.",
                                      registry=self.registry)

        self.pauses = PauseMonitor(self.registry)  # GC pauses and event-loop lag: where a tail comes from
        self._children: dict[tuple[str, ...], Any] = {}  # (metric, labels...) → its child: one dict lookup a count

    def _child(self, metric: Counter | Histogram, name: str, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once (labels are routes, statuses, actions: a bounded set)."""
        key = (name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, record: dict[str, Any]) -> None:
        endpoint = str(record.get("endpoint") or "?")
        response = record.get("response") or {}
        self._child(self.requests, "requests", endpoint, str(response.get("status"))).inc()
        if response.get("latency_ms") is not None:
            self._child(self.latency, "latency", endpoint).observe(float(response["latency_ms"]) / 1000.0)
        action = (record.get("gateway") or {}).get("action")
        if action:
            self._child(self.decisions, "decisions", str(action)).inc()
        code = (response.get("error") or {}).get("code")
        if code in ("upstream_error", "upstream_timeout"):
            self._child(self.upstream_errors, "upstream_errors", code).inc()
        if response.get("interrupted"):
            self.interrupted.inc()

    def render(self, log_queue_depth: int, *, live_flagged: int = 0, live_dropped: int = 0, log_healthy: bool = True,
               log_write_errors: int = 0, policy_bad_records: int = 0, policy_records: int = 0,
               policy_expired_records: int = 0) -> bytes:
        self.log_queue.set(log_queue_depth)
        self.log_healthy.set(1 if log_healthy else 0)
        self.log_write_errors.set(log_write_errors)
        self.policy_bad_records.set(policy_bad_records)
        self.policy_records.set(policy_records)
        self.policy_expired.set(policy_expired_records)
        self.live_flagged.set(live_flagged)
        self.live_dropped.set(live_dropped)
        return bytes(generate_latest(self.registry))
