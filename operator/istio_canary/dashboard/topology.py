"""The namespace's topology from Istio's request metrics: services with their versions inside,
edges with request rate and success rate, and the released services' live split. (pure)"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from istio_canary.analysis.promql import escape_label_value

__all__ = ["EdgeKey", "graph", "topology_query"]

UNKNOWN = "unknown"


def topology_query(*, namespace: str, window_seconds: int) -> str:
    """Requests per second between workloads, as the destination's sidecar reported them."""
    selector = (
        f'reporter="destination",destination_workload_namespace="{escape_label_value(namespace)}"'
    )
    return (
        "sum by (source_canonical_service, source_version, destination_service_name, "
        f"destination_version, response_code) (rate(istio_requests_total{{{selector}}}[{int(window_seconds)}s]))"
    )


@dataclass(frozen=True, order=True)
class EdgeKey:
    source_service: str
    source_version: str
    service: str
    version: str


def _edges(result: Iterable[Mapping[str, Any]]) -> dict[EdgeKey, tuple[float, float]]:
    """(source, destination) -> (requests per second, 5xx per second)."""
    totals: dict[EdgeKey, tuple[float, float]] = {}
    for series in result:
        labels = series.get("metric", {})
        key = EdgeKey(
            source_service=labels.get("source_canonical_service", UNKNOWN),
            source_version=labels.get("source_version", UNKNOWN),
            service=labels.get("destination_service_name", UNKNOWN),
            version=labels.get("destination_version", UNKNOWN),
        )
        rate = float((series.get("value") or (0, "0"))[1])
        failed = rate if str(labels.get("response_code", "")).startswith("5") else 0.0
        before = totals.get(key, (0.0, 0.0))
        totals[key] = (before[0] + rate, before[1] + failed)
    return totals


def _split(release: Mapping[str, Any]) -> dict[str, int]:
    spec, traffic = release.get("spec", {}), (release.get("status") or {}).get("traffic") or {}
    split = {}
    for role in ("stable", "canary"):
        version = spec.get(role, {}).get("version")
        if version and traffic.get(role) is not None:
            split[version] = int(traffic[role])
    return split


def _version_id(service: str, version: str) -> str:
    return f"{service}/{version}" if version != UNKNOWN else service


def _add_node(nodes: dict[str, dict[str, Any]], service: str, version: str) -> str:
    nodes.setdefault(service, {"id": service, "kind": "service", "label": service})
    if version == UNKNOWN:
        return service
    node_id = _version_id(service, version)
    nodes.setdefault(node_id, {"id": node_id, "kind": "version", "label": version, "parent": service})
    return node_id


def graph(result: Sequence[Mapping[str, Any]], releases: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Cytoscape-ready ``{"nodes": [...], "edges": [...]}`` from :func:`topology_query`'s vector."""
    nodes: dict[str, dict[str, Any]] = {}
    edges = []
    for key, (rate, failed) in sorted(_edges(result).items()):
        source = _add_node(nodes, key.source_service, key.source_version)
        target = _add_node(nodes, key.service, key.version)
        success = None if rate <= 0 else round(100.0 * (1.0 - failed / rate), 2)
        edges.append(
            {"id": f"{source}->{target}", "source": source, "target": target,
             "requestRate": round(rate, 3), "successRate": success}
        )
    for release in releases:
        service = release.get("spec", {}).get("service", "")
        split = _split(release)
        for version, weight in split.items():
            nodes[_add_node(nodes, service, version)]["weight"] = weight
        if service in nodes:
            nodes[service].update(released=True, release=release.get("metadata", {}).get("name"), split=split)
    return {"nodes": sorted(nodes.values(), key=lambda n: n["id"]), "edges": edges}
