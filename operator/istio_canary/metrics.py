"""The operator's own Prometheus metrics, on a dedicated registry.

A dedicated ``CollectorRegistry`` keeps the process and platform collectors of the
default registry out of the way of tests and lets the operator expose exactly what
is documented in docs/install.md. Labels are chosen for bounded cardinality:
per-release series exist only for the canary weight (a user asked to see it per release)
and are removed when the release goes away.

Handlers call the module-level functions, which act on ``DEFAULT``; tests build their
own :class:`OperatorMetrics` so that no state leaks between them.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import start_http_server as _start_http_server

from istio_canary.models import CanaryReleaseStatus, Phase, Role, Verdict
from istio_canary.models.hooks import HookType

__all__ = [
    "DEFAULT",
    "NAMESPACE",
    "OperatorMetrics",
    "VersionWeight",
    "count_api_error",
    "count_rollback",
    "count_verdict",
    "forget_release",
    "observe_release",
    "observe_status",
    "reconcile_timer",
    "start_metrics_server",
]

NAMESPACE = "istio_canary"
"""Prefix of every metric name, so they group together in Prometheus."""

# Reconciles are API round trips: milliseconds normally, seconds under a slow API server.
_RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class VersionWeight:
    """The traffic weight one version of a release receives."""

    version: str
    role: Role | str
    weight: int


class OperatorMetrics:
    """Every metric the operator exports, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        common: dict[str, Any] = {"namespace": NAMESPACE, "registry": self.registry}
        self.releases = Gauge("releases", "CanaryReleases handled by this operator, by phase.", ["phase"], **common)
        self.weight = Gauge(
            "weight_percent",
            "Percent of a release's traffic that each version receives.",
            ["namespace", "release", "version", "role"],
            **common,
        )
        self.reconcile_duration = Histogram(
            "reconcile_duration_seconds", "Time spent in one handler call.", ["handler"],
            buckets=_RECONCILE_BUCKETS, **common,
        )
        self.api_errors = Counter(
            "api_errors",
            "Kubernetes API calls that failed, by verb, resource and HTTP status code.",
            ["verb", "resource", "code"],
            **common,
        )
        self.verdicts = Counter("analysis_verdicts", "Answers of the analysis judge.", ["verdict"], **common)
        self.rollbacks = Counter(
            "rollbacks", "Releases rolled back by the operator because the analysis failed.", **common
        )
        self.notifications = Counter(
            "notifications",
            "Notices to the configured receivers, by receiver and result (sent, failed, dropped).",
            ["receiver", "result"],
            **common,
        )
        self.webhook_calls = Counter(
            "webhook_calls", "Calls of the releases' webhooks, by type and result (ok: a 2xx answer).",
            ["type", "result"], **common,
        )
        # Where each release stands, so the phase gauge is a count that a missed
        # delete event cannot push below zero, and stale weight series can be removed.
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}
        self._weight_labels: dict[tuple[str, str], set[tuple[str, str, str, str]]] = {}
        # Every phase exports a sample (0 included): absent series make alerts silently pass.
        for phase in Phase:
            self.releases.labels(phase=phase.value).set(0)
        for verdict in Verdict:
            self.verdicts.labels(verdict=verdict.value)
        for kind in HookType:
            for result in ("ok", "failed"):
                self.webhook_calls.labels(type=kind.value, result=result)

    def observe_release(
        self,
        *,
        namespace: str,
        name: str,
        phase: Phase | str,
        weights: Iterable[VersionWeight] = (),
    ) -> None:
        """Record a release's phase and the weight of each of its versions."""
        key = (namespace, name)
        labels = {(namespace, name, w.version, _text(w.role)): w.weight for w in weights}
        with self._lock:
            self._phases[key] = _text(phase)
            for stale in self._weight_labels.get(key, set()) - labels.keys():
                self.weight.remove(*stale)
            for label_values, weight in labels.items():
                self.weight.labels(*label_values).set(weight)
            self._weight_labels[key] = set(labels)
            self._recount_phases()

    def observe_status(self, *, namespace: str, name: str, status: CanaryReleaseStatus) -> None:
        """Record a release from the status the operator is about to write."""
        weights = [VersionWeight(v.version, v.role, v.weight) for v in status.versions]
        self.observe_release(namespace=namespace, name=name, phase=status.phase, weights=weights)

    def forget_release(self, *, namespace: str, name: str) -> None:
        """Drop a deleted release: it no longer counts in any phase and has no weight series."""
        key = (namespace, name)
        with self._lock:
            self._phases.pop(key, None)
            for stale in self._weight_labels.pop(key, set()):
                self.weight.remove(*stale)
            self._recount_phases()

    @contextmanager
    def reconcile_timer(self, handler: str) -> Iterator[None]:
        """Time the body of the ``with`` block, also when it raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.reconcile_duration.labels(handler=handler).observe(time.perf_counter() - started)

    def count_api_error(self, *, verb: str, resource: str, code: int | str) -> None:
        """Count one failed Kubernetes API call (``code`` 0 or "" means no HTTP answer)."""
        self.api_errors.labels(verb=verb, resource=resource, code=str(code or "none")).inc()

    def count_verdict(self, verdict: Verdict | str) -> None:
        self.verdicts.labels(verdict=_text(verdict)).inc()

    def count_rollback(self) -> None:
        self.rollbacks.inc()

    def count_notification(self, *, receiver: str, result: str) -> None:
        self.notifications.labels(receiver=receiver, result=result).inc()

    def count_webhook_call(self, *, kind: HookType, ok: bool) -> None:
        self.webhook_calls.labels(type=kind.value, result="ok" if ok else "failed").inc()

    def render(self) -> bytes:
        """The exposition text, as Prometheus would scrape it."""
        return generate_latest(self.registry)

    def _recount_phases(self) -> None:
        counts = {phase.value: 0 for phase in Phase}
        for phase in self._phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            self.releases.labels(phase=phase).set(count)


def _text(value: Phase | Role | Verdict | str) -> str:
    # The enums are str subclasses, whose str() is "Phase.PENDING": the wire value is wanted.
    return str(value.value) if isinstance(value, enum.Enum) else value


DEFAULT = OperatorMetrics()
"""The metrics the running operator exports."""


def observe_release(
    *, namespace: str, name: str, phase: Phase | str, weights: Iterable[VersionWeight] = ()
) -> None:
    DEFAULT.observe_release(namespace=namespace, name=name, phase=phase, weights=weights)


def observe_status(*, namespace: str, name: str, status: CanaryReleaseStatus) -> None:
    DEFAULT.observe_status(namespace=namespace, name=name, status=status)


def forget_release(*, namespace: str, name: str) -> None:
    DEFAULT.forget_release(namespace=namespace, name=name)


def reconcile_timer(handler: str) -> AbstractContextManager[None]:
    return DEFAULT.reconcile_timer(handler)


def count_api_error(*, verb: str, resource: str, code: int | str) -> None:
    DEFAULT.count_api_error(verb=verb, resource=resource, code=code)


def count_verdict(verdict: Verdict | str) -> None:
    DEFAULT.count_verdict(verdict)


def count_rollback() -> None:
    DEFAULT.count_rollback()


def start_metrics_server(
    port: int, *, addr: str = "0.0.0.0", metrics: OperatorMetrics | None = None
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` from a daemon thread; returns the server so callers can shut it down."""
    registry = (metrics or DEFAULT).registry
    return _start_http_server(port, addr=addr, registry=registry)
