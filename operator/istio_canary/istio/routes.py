"""Reading VirtualService routes: which host a destination names, which routes are a service's.

Shared by the builder (which replaces a service's routes) and the read-back (which reports
what they say), so both agree on what "the routes for this service" are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from istio_canary.models.routing import version_service_name

__all__ = [
    "MIRROR_FIELDS",
    "is_catch_all",
    "is_service_host",
    "routes_only_to",
    "subsets_of",
    "version_of",
    "version_service_name",
]

# The fields of an http route that copy its requests elsewhere.
MIRROR_FIELDS = ("mirror", "mirrorPercentage", "mirrors")


def is_service_host(host: str, *, service: str, namespace: str | None) -> bool:
    """Whether ``host`` names the Service from a rule in the Service's own namespace.

    Accepted: the short name (``reviews``), ``reviews.<ns>``, ``reviews.<ns>.svc`` and
    ``reviews.<ns>.svc.<cluster domain>``. Without a namespace, any ``reviews.*`` counts.
    """
    if host == service:
        return True
    if namespace is None:
        return host.startswith(service + ".")
    qualified = f"{service}.{namespace}"
    return host in (qualified, qualified + ".svc") or host.startswith(qualified + ".svc.")


def _is_release_host(host: str, *, service: str, namespace: str | None, versions: Iterable[str]) -> bool:
    """The Service itself, or (routing mode Services) the Service of one of ``versions``."""
    return is_service_host(host, service=service, namespace=namespace) or any(
        is_service_host(host, service=version_service_name(service, version), namespace=namespace)
        for version in versions
    )


def routes_only_to(
    route: Mapping[str, Any], *, service: str, namespace: str | None, versions: Iterable[str] = ()
) -> bool:
    """Whether ``route`` (an http or tcp route) forwards, and only to the Service.

    A route that redirects, answers directly or delegates has no ``route`` list and is not
    the Service's; neither is one that splits between the Service and another host.
    With ``versions`` (routing mode Services), those versions' own Services count as the Service.
    """
    if any(key in route for key in ("redirect", "directResponse", "delegate")):
        return False
    destinations = route.get("route") or []
    wanted = tuple(versions)
    return bool(destinations) and all(
        _is_release_host(
            str((entry.get("destination") or {}).get("host", "")),
            service=service,
            namespace=namespace,
            versions=wanted,
        )
        for entry in destinations
    )


def version_of(
    destination: Mapping[str, Any], *, service: str, namespace: str | None, versions: Iterable[str] = ()
) -> str | None:
    """The version a destination sends to: its subset, or the version whose own Service it names."""
    subset = destination.get("subset")
    if subset is not None:
        return str(subset)
    host = str(destination.get("host", ""))
    return next(
        (v for v in versions if is_service_host(host, service=version_service_name(service, v), namespace=namespace)),
        None,
    )


def is_catch_all(route: Mapping[str, Any]) -> bool:
    """Whether ``route`` takes every request (on its port): no match, or matches on port alone."""
    return all(set(request) <= {"port"} for request in route.get("match") or [])


def subsets_of(route: Mapping[str, Any]) -> set[str | None]:
    """The subsets a route's destinations name (None for a destination without one)."""
    return {(entry.get("destination") or {}).get("subset") for entry in route.get("route") or []}
