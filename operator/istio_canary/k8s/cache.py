"""What the operator keeps of watched objects, and how a release's view is assembled from it.

kopf's indices hold the Services, Deployments, VirtualServices and DestinationRules of the
watched namespaces, kept current by watch streams. A reconcile then reads nothing from the API
server: ``observe_cached`` assembles the same ``Observed`` that ``Cluster.observe`` would read,
so a timer tick costs no request, and a 1,000-release operator does not decode list responses
over and over. The writes still carry resourceVersions, so a cache that lags behind a change
surfaces as a conflict and a fresh decision, never as a lost update.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from istio_canary.istio import edge
from istio_canary.istio.routes import is_service_host, version_service_name
from istio_canary.models.marks import RELEASE_LABEL
from istio_canary.phases import Observed

__all__ = ["edge_routing", "observe_cached", "pick_routing", "slim"]

# Kept out of the cache: large, and never read by a decision.
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A watched object without managedFields and last-applied copies (often most of its bytes)."""
    obj = dict(body)
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _DROPPED_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    obj["metadata"] = meta
    return obj


def pick_routing(
    items: Iterable[Mapping[str, Any]], *, kind: str, namespace: str, service: str
) -> dict[str, Any] | None:
    """The object for this host: the one named after the Service first, else the first (by name) that serves it."""
    def serves(obj: Mapping[str, Any]) -> bool:
        spec = obj.get("spec") or {}
        hosts = spec.get("hosts", []) if kind == "VirtualService" else [spec.get("host", "")]
        # The same reading of a host as the builders' (istio/routes.py), any cluster domain included.
        return any(is_service_host(str(host), service=service, namespace=namespace) for host in hosts)

    matching = sorted(
        (dict(o) for o in items if serves(o)),
        key=lambda o: (o["metadata"]["name"] != service, o["metadata"]["name"]),
    )
    return matching[0] if matching else None


def edge_routing(
    virtual_services: Mapping[Any, Iterable[Mapping[str, Any]]],
    *,
    namespace: str,
    service: str,
    release: str,
    listed: Iterable[tuple[str, str]],
    primary: str | None,
) -> tuple[dict[str, Any], ...]:
    """The other VirtualServices the release splits: those in its namespace that route to the
    Service or that it already marked, and the listed ones (by namespace, then name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for vs in virtual_services.get(namespace, ()):
        name = vs["metadata"]["name"]
        marked = (vs["metadata"].get("labels") or {}).get(RELEASE_LABEL) == release and bool(release)
        if name != primary and (marked or edge.routes_to_host(vs, service=service, namespace=namespace)):
            found[(namespace, name)] = dict(vs)
    for ns, name in listed:
        match = next((vs for vs in virtual_services.get(ns, ()) if vs["metadata"]["name"] == name), None)
        if match is not None and not (ns == namespace and name == primary):
            found[(ns, name)] = dict(match)
    return tuple(found[key] for key in sorted(found))


def observe_cached(
    *,
    namespace: str,
    service: str,
    services: Mapping[Any, Iterable[Mapping[str, Any]]],
    deployments: Mapping[Any, Iterable[Mapping[str, Any]]],
    virtual_services: Mapping[Any, Iterable[Mapping[str, Any]]],
    destination_rules: Mapping[Any, Iterable[Mapping[str, Any]]],
    autoscalers: Mapping[Any, Iterable[Mapping[str, Any]]] | None = None,
    disruption_budgets: Mapping[Any, Iterable[Mapping[str, Any]]] | None = None,
    release: str = "",
    listed: Iterable[tuple[str, str]] = (),
    versions: Iterable[str] = (),
    namespaces: Mapping[Any, Iterable[Mapping[str, str]]] | None = None,
    ingresses: Mapping[Any, Iterable[Mapping[str, Any]]] | None = None,
) -> Observed:
    """``Observed`` from the caches: services keyed by (namespace, name), the rest by namespace.

    ``listed`` names (namespace, name) VirtualServices elsewhere that the release splits too;
    ``versions`` the versions whose own Services (routing mode Services) are looked up.
    """
    found = next(iter(services.get((namespace, service), ())), None)
    own = (next(iter(services.get((namespace, version_service_name(service, v)), ())), None) for v in versions)
    primary = pick_routing(
        virtual_services.get(namespace, ()), kind="VirtualService", namespace=namespace, service=service
    )
    return Observed(
        service=dict(found) if found is not None else None,
        version_services=tuple(dict(o) for o in own if o is not None),
        deployments=tuple(dict(d) for d in deployments.get(namespace, ())),
        virtual_service=primary,
        edge_virtual_services=edge_routing(
            virtual_services, namespace=namespace, service=service, release=release, listed=listed,
            primary=primary["metadata"]["name"] if primary is not None else None,
        ),
        destination_rule=pick_routing(
            destination_rules.get(namespace, ()), kind="DestinationRule", namespace=namespace, service=service
        ),
        autoscalers=tuple(dict(o) for o in (autoscalers or {}).get(namespace, ())),
        disruption_budgets=tuple(dict(o) for o in (disruption_budgets or {}).get(namespace, ())),
        namespace_labels=_labels_of(namespaces, namespace),
        ingresses=tuple(dict(o) for o in (ingresses or {}).get(namespace, ())),
    )


def _labels_of(namespaces: Mapping[Any, Iterable[Mapping[str, str]]] | None, name: str) -> dict[str, str] | None:
    """The namespace's labels from the cache (None: not cached, e.g. no permission to watch namespaces)."""
    found = next(iter((namespaces or {}).get(name, ())), None)
    return dict(found) if found is not None else None
