"""What the simulator counts for ``GET /stats``: per service, who served and who got copies."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from meshsim.matching import Request
from meshsim.mesh import fqdn
from meshsim.routing import RoutingDecision

__all__ = ["RequestOutcome", "ServiceStats", "stats_key"]


@dataclasses.dataclass(frozen=True)
class RequestOutcome:
    """What a client saw for one request, and where its mirror copies went."""

    version: str | None
    code: int
    latency_ms: float
    flags: str
    workload: str | None
    mirrored_to: tuple[str, ...] = ()
    response_headers: tuple[tuple[str, str], ...] = ()
    """Headers the mesh added to the response (a sticky session's Set-Cookie)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "code": self.code,
            "latencyMs": round(self.latency_ms, 3),
            "responseFlags": self.flags,
            "workload": self.workload,
            "mirroredTo": self.mirrored_to[0] if self.mirrored_to else None,
            "mirrors": list(self.mirrored_to),
        } | self._headers_json()

    def _headers_json(self) -> dict[str, Any]:
        # Only when the mesh added some: a body without them reads as it always did.
        if not self.response_headers:
            return {}
        return {"responseHeaders": [[name, value] for name, value in self.response_headers]}


@dataclasses.dataclass
class ServiceStats:
    requests: int = 0
    served: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    mirrored: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    responses: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    flags: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "served": dict(self.served),
            "errors": dict(self.errors),
            "mirrored": dict(self.mirrored),
            "responses": dict(self.responses),
            "responseFlags": dict(self.flags),
        }


def stats_key(req: Request, decision: RoutingDecision) -> str:
    """Counts belong to the service the client asked for (``namespace/name``)."""
    host = fqdn(req.host, req.namespace)
    parts = host.split(".")
    return f"{parts[1]}/{parts[0]}" if host.endswith(".svc.cluster.local") else host
