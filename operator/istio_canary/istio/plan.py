"""What the routing should be: the state machine's decision, in the builders' terms.

``RoutePlan`` is produced by the pure state machine and consumed by the VirtualService and
DestinationRule builders. It is checked on construction, so a builder never has to wonder
whether weights add up or whether a route names a subset that does not exist.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from istio_canary.istio.routes import version_service_name
from istio_canary.models import MatchRule

__all__ = ["PortKind", "RoutePlan", "ServicePort", "StickySession", "service_ports"]


class PortKind(enum.Enum):
    """How Istio treats traffic on a Service port, which decides the kind of route it takes."""

    HTTP = "http"
    """HTTP, HTTP/2 or gRPC: ``http`` routes, with request matching and mirroring."""
    TCP = "tcp"
    """Opaque TCP or TLS: ``tcp`` routes by weight only; requests cannot be matched or mirrored."""
    SNIFFED = "sniffed"
    """No declared protocol: Istio detects HTTP per connection, so the port gets both kinds."""
    UNROUTED = "unrouted"
    """UDP or SCTP: the sidecar does not intercept it, so no route can apply."""


# Istio's protocol names (name prefix or appProtocol), and the Kubernetes standard appProtocols.
# TLS and HTTPS count as TCP here: ``tls`` routes need SNI matches that the operator cannot
# know, and Istio falls back to ``tcp`` routes for TLS ports without a ``tls`` route.
_HTTP_PROTOCOLS = frozenset(
    {"http", "http2", "grpc", "grpc-web", "h2c", "kubernetes.io/h2c", "kubernetes.io/ws"}
)
_TCP_PROTOCOLS = frozenset({"tcp", "tls", "https", "mongo", "mysql", "redis", "kubernetes.io/wss"})


@dataclass(frozen=True, kw_only=True)
class ServicePort:
    """One port of the Service whose traffic is split, as the Service declares it.

    ``protocol`` is the Kubernetes transport (TCP, UDP, SCTP); ``app_protocol`` and the
    ``<protocol>[-<suffix>]`` port name tell Istio the application protocol, in that order
    of precedence (Istio's "explicit protocol selection").
    """

    name: str = ""
    port: int
    protocol: str = "TCP"
    app_protocol: str | None = None

    @property
    def kind(self) -> PortKind:
        if self.protocol.upper() != "TCP":
            return PortKind.UNROUTED
        declared = (self.app_protocol or self.name.split("-", 1)[0]).lower()
        if declared in _HTTP_PROTOCOLS:
            return PortKind.HTTP
        if declared in _TCP_PROTOCOLS:
            return PortKind.TCP
        return PortKind.SNIFFED

    @property
    def label(self) -> str:
        """How messages name the port: ``9080 (http)``."""
        return f"{self.port} ({self.name})" if self.name else str(self.port)


def service_ports(service: Mapping[str, Any]) -> list[ServicePort]:
    """The ports of a Service object, as the API server sends it (camelCase keys).

    ``app_protocol`` is also accepted, as the Kubernetes client's ``to_dict()`` spells it.
    """
    return [
        ServicePort(
            name=entry.get("name") or "",
            port=int(entry["port"]),
            protocol=entry.get("protocol") or "TCP",
            app_protocol=entry.get("appProtocol") or entry.get("app_protocol"),
        )
        for entry in service.get("spec", {}).get("ports") or []
    ]


@dataclass(frozen=True, kw_only=True)
class StickySession:
    """Sticky canary sessions: the cookie the canary's responses set and the cookie route matches.

    ``value`` names the canary's revision, so a cookie from an earlier canary never matches.
    """

    cookie_name: str
    value: str
    max_age: int


@dataclass(frozen=True, kw_only=True)
class RoutePlan:
    """The routing the release wants now.

    ``service`` is the Service's short name, used as the VirtualService host and as the
    destination host, as Bookinfo's own VirtualServices do: Istio resolves a short name in the
    namespace of the rule, and the operator writes its rules in the Service's namespace.
    """

    service: str
    namespace: str
    version_label: str
    stable_version: str
    canary_version: str
    subsets: tuple[str, ...]
    """Versions that get a DestinationRule subset; job offline leaves only the survivor."""
    stable_weight: int
    canary_weight: int
    match: tuple[MatchRule, ...] = ()
    """Requests matching any rule go 100% to the canary; the rest are split by weight."""
    mirror_percent: float | None = None
    """Copy this percent of the weighted route's requests to the canary; None: no mirroring."""
    version_services: bool = False
    """Route to each version's own Service (routing mode Services) rather than to a subset."""
    sticky: StickySession | None = None
    """Clients the weight sends to the canary get a cookie, and requests with it go to the canary."""

    @property
    def version_hosts_of(self) -> tuple[str, ...]:
        """The versions whose own Services the routes may name (none when routing by subsets)."""
        return (self.stable_version, self.canary_version) if self.version_services else ()

    def destination(self, version: str, *, host: str | None = None) -> dict[str, Any]:
        """Where requests for ``version`` go: ``host`` (default: the Service) and its subset, or
        the version's own Service."""
        if self.version_services:
            return {"host": version_service_name(self.service, version)}
        return {"host": host or self.service, "subset": version}

    def __post_init__(self) -> None:
        # These are invariants of the state machine's output, not user input: a violation
        # is a bug, so it is a ValueError rather than a domain error.
        if self.stable_version == self.canary_version:
            raise ValueError(f"stable and canary are both {self.stable_version!r}")
        if not self.subsets or len(set(self.subsets)) != len(self.subsets):
            raise ValueError(
                f"subsets must be a non-empty list of distinct versions: {self.subsets}"
            )
        strangers = set(self.subsets) - {self.stable_version, self.canary_version}
        if strangers:
            raise ValueError(
                f"subsets {sorted(strangers)} are neither the stable nor the canary version"
            )
        for role, weight in (("stable", self.stable_weight), ("canary", self.canary_weight)):
            if not 0 <= weight <= 100:
                raise ValueError(f"{role} weight {weight} is outside 0..100")
        if self.stable_weight + self.canary_weight != 100:
            raise ValueError(
                f"weights must add up to 100: stable {self.stable_weight} "
                f"+ canary {self.canary_weight}"
            )
        if self.stable_weight and self.stable_version not in self.subsets:
            raise ValueError(
                f"stable weight {self.stable_weight} points at a version without a subset"
            )
        if self.canary_weight and self.canary_version not in self.subsets:
            raise ValueError(
                f"canary weight {self.canary_weight} points at a version without a subset"
            )
        if self.sticky is not None and not self.canary_weight:
            raise ValueError("sticky sessions keep clients on the canary, which has no weight")
        if self.match and self.canary_version not in self.subsets:
            raise ValueError("match rules send requests to the canary, which has no subset")
        if self.mirror_percent is not None:
            if not 0.0 <= self.mirror_percent <= 100.0:
                raise ValueError(f"mirror percent {self.mirror_percent} is outside 0..100")
            if self.canary_version not in self.subsets:
                raise ValueError("mirroring copies requests to the canary, which has no subset")

    def weight_of(self, version: str) -> int:
        """The percent of unmatched requests routed to ``version``."""
        if version == self.stable_version:
            return self.stable_weight
        if version == self.canary_version:
            return self.canary_weight
        return 0
