"""Istio's standard HTTP metrics, with Istio's names, labels and buckets.

Each request is recorded twice, as a real mesh does: once by the client's sidecar
(``reporter="source"``, which also sees the 404/503 that Envoy answers itself) and once by the
server's sidecar (``reporter="destination"``, only for requests that reached a pod). A mirrored
copy is recorded by the mirror target's sidecar only: the client never sees its response.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import prometheus_client

from meshsim.mesh import Service, Workload

__all__ = ["DURATION_BUCKETS_MS", "IstioMetrics", "Observation"]

# Istio's default buckets for istio_request_duration_milliseconds
DURATION_BUCKETS_MS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip

LABELS = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_app",
    "source_version",
    "source_canonical_service",
    "destination_workload",
    "destination_workload_namespace",
    "destination_app",
    "destination_version",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "request_protocol",
    "response_code",
    "response_flags",
    "connection_security_policy",
)

UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class Observation:
    """One request as a sidecar reports it."""

    source_workload: str
    source_namespace: str
    service: Service | None
    host: str
    workload: Workload | None
    version: str | None
    code: int
    flags: str
    latency_ms: float
    # The client pod's labels (app, version), where the client is a Deployment of the mesh.
    source_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


class IstioMetrics:
    """Istio's request counter and duration histogram, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self._requests = prometheus_client.Counter(
            "istio_requests",
            "Requests seen by the simulated sidecars.",
            LABELS,
            registry=self.registry,
        )
        self._duration = prometheus_client.Histogram(
            "istio_request_duration_milliseconds",
            "Request durations seen by the simulated sidecars.",
            LABELS,
            buckets=DURATION_BUCKETS_MS,
            registry=self.registry,
        )

        # prometheus_client resolves label values on every .labels() call; a simulator sending
        # hundreds of requests a second reuses the few series it has.
        self._series: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def record(self, observation: Observation, *, reporter: str) -> None:
        labels = _labels(observation, reporter=reporter)
        values = tuple(labels[name] for name in LABELS)
        series = self._series.get(values)
        if series is None:
            series = (self._requests.labels(*values), self._duration.labels(*values))
            self._series[values] = series
        series[0].inc()
        series[1].observe(observation.latency_ms)

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)


def _labels(observation: Observation, *, reporter: str) -> dict[str, str]:
    service, workload = observation.service, observation.workload
    pod_labels = workload.labels if workload else {}
    app = pod_labels.get("app", UNKNOWN)
    return {
        "reporter": reporter,
        "source_workload": observation.source_workload,
        "source_workload_namespace": observation.source_namespace,
        "source_app": observation.source_labels.get("app", observation.source_workload),
        "source_version": observation.source_labels.get("version", UNKNOWN),
        "source_canonical_service": observation.source_labels.get("app", observation.source_workload),
        "destination_workload": workload.name if workload else UNKNOWN,
        "destination_workload_namespace": workload.namespace if workload else UNKNOWN,
        "destination_app": app,
        "destination_version": observation.version or UNKNOWN,
        "destination_canonical_service": app,
        "destination_canonical_revision": observation.version or "latest",
        "destination_service": observation.host,
        "destination_service_name": service.name if service else observation.host,
        "destination_service_namespace": service.namespace if service else UNKNOWN,
        "request_protocol": "http",
        "response_code": str(observation.code),
        "response_flags": observation.flags,
        # the destination's sidecar terminates mTLS; the client's cannot vouch for it
        "connection_security_policy": "mutual_tls" if reporter == "destination" else UNKNOWN,
    }
