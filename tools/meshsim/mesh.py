"""What the simulated data plane knows about the cluster: a frozen snapshot.

The snapshot holds the Istio objects as the API server returns them (plain dicts, so that
the routing engine reads exactly the fields a user wrote) and the Kubernetes objects reduced
to what routing needs: a Service's selector and ports, a Deployment's pod labels and ready
replicas. Building it from API responses is pure, so tests can make one from YAML.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CLUSTER_DOMAIN",
    "MeshSnapshot",
    "Service",
    "Workload",
    "fqdn",
    "snapshot_from_objects",
]

CLUSTER_DOMAIN = "svc.cluster.local"

JsonDict = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Service:
    """A Kubernetes Service, as far as routing cares."""

    namespace: str
    name: str
    selector: Mapping[str, str]
    ports: tuple[int, ...]

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.{CLUSTER_DOMAIN}"


@dataclasses.dataclass(frozen=True)
class Workload:
    """A Deployment: the labels its pods carry and how many of them are ready."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    ready_replicas: int

    def selected_by(self, selector: Mapping[str, str]) -> bool:
        return all(self.labels.get(key) == value for key, value in selector.items())


@dataclasses.dataclass(frozen=True)
class MeshSnapshot:
    """Everything the routing engine reads, at one moment."""

    virtual_services: tuple[JsonDict, ...] = ()
    destination_rules: tuple[JsonDict, ...] = ()
    services: tuple[Service, ...] = ()
    workloads: tuple[Workload, ...] = ()

    def service_for_host(self, host: str) -> Service | None:
        for service in self.services:
            if service.host == host:
                return service
        return None


def fqdn(host: str, namespace: str) -> str:
    """Expand a short host name the way Istio does, relative to the namespace it was written in.

    ``reviews`` in ``bookinfo`` and ``reviews.bookinfo`` both mean
    ``reviews.bookinfo.svc.cluster.local``; a name with more dots is taken as written.
    """
    parts = host.split(".")
    if host.startswith("*") or len(parts) > 3:
        return host
    if len(parts) == 1:
        return f"{host}.{namespace}.{CLUSTER_DOMAIN}"
    if len(parts) == 2:
        return f"{host}.{CLUSTER_DOMAIN}"
    if parts[2] == "svc":
        return f"{host}.cluster.local"
    return host


def service_from_object(obj: Mapping[str, Any]) -> Service:
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ports = tuple(int(port["port"]) for port in spec.get("ports") or () if "port" in port)
    return Service(
        namespace=str(metadata.get("namespace", "default")),
        name=str(metadata["name"]),
        selector=dict(spec.get("selector") or {}),
        ports=ports,
    )


def workload_from_object(obj: Mapping[str, Any]) -> Workload:
    metadata = obj.get("metadata") or {}
    template = (obj.get("spec") or {}).get("template") or {}
    status = obj.get("status") or {}
    return Workload(
        namespace=str(metadata.get("namespace", "default")),
        name=str(metadata["name"]),
        labels=dict((template.get("metadata") or {}).get("labels") or {}),
        ready_replicas=int(status.get("readyReplicas") or 0),
    )


def _creation_order(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = obj.get("metadata") or {}
    return (
        str(metadata.get("creationTimestamp") or ""),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or ""),
    )


def snapshot_from_objects(
    *,
    virtual_services: Iterable[Mapping[str, Any]] = (),
    destination_rules: Iterable[Mapping[str, Any]] = (),
    services: Iterable[Mapping[str, Any]] = (),
    deployments: Iterable[Mapping[str, Any]] = (),
) -> MeshSnapshot:
    """Build a snapshot from API objects (dicts as the API server serves them).

    Istio objects are sorted oldest first: when two VirtualServices claim one host, Istio's
    sidecars use the oldest, and the engine takes the first it finds.
    """
    return MeshSnapshot(
        virtual_services=tuple(dict(vs) for vs in sorted(virtual_services, key=_creation_order)),
        destination_rules=tuple(dict(dr) for dr in sorted(destination_rules, key=_creation_order)),
        services=tuple(service_from_object(svc) for svc in services),
        workloads=tuple(workload_from_object(deploy) for deploy in deployments),
    )
