"""Undoing the operator's routing, and reading back what the stored routing does.

``read_back_traffic`` reads the VirtualService as the API server stored it, never the plan,
so ``status.traffic`` reports what Envoy is told rather than what the operator meant to say.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from istio_canary.errors import ForeignObjectError
from istio_canary.istio.ownership import (
    ORIGINAL_SPEC_ANNOTATION,
    RELEASE_LABEL,
    created_by_operator,
    recorded_original,
)
from istio_canary.istio.routes import is_catch_all, routes_only_to, version_of
from istio_canary.models import TrafficStatus

__all__ = ["read_back_edge", "read_back_traffic", "restore_original", "restored_object"]


def restore_original(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The spec ``obj`` had before the operator adopted it; None when the operator created it.

    None means: delete the object. An object that is neither created nor adopted by the
    operator raises ForeignObjectError, because deleting it would destroy someone's routing.
    """
    spec = recorded_original(obj)
    if spec is not None:
        return spec
    if created_by_operator(obj):
        return None
    metadata = obj.get("metadata", {})
    raise ForeignObjectError(
        f"{obj.get('kind', 'object')} {metadata.get('name')!r} was neither created nor adopted "
        "by the operator; it is left alone"
    )


def restored_object(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """``obj`` as it was before adoption, without the operator's marks; None: delete it.

    Metadata other than the operator's annotation and label (resourceVersion included, for
    a conflict-checked replace) is kept as it is now.
    """
    spec = restore_original(obj)
    if spec is None:
        return None
    restored = copy.deepcopy(dict(obj))
    metadata = restored.setdefault("metadata", {})
    # An emptied map stays (as {}): the adapter writes the difference as a merge patch, in
    # which a missing map would remove what the watch cache leaves out (kubectl's
    # last-applied-configuration), and {} removes only the operator's keys.
    for key, mark in (("annotations", ORIGINAL_SPEC_ANNOTATION), ("labels", RELEASE_LABEL)):
        marks = metadata.get(key) or {}
        marks.pop(mark, None)
        metadata[key] = marks
    restored["spec"] = spec
    restored.pop("status", None)
    return restored


def read_back_traffic(
    vs: Mapping[str, Any],
    *,
    service: str,
    stable_version: str,
    canary_version: str,
    namespace: str | None = None,
    version_services: bool = False,
) -> TrafficStatus:
    """What the stored VirtualService does with the Service's traffic.

    Weights come from the first catch-all route (no match, or a match on port alone) that
    forwards only to the Service, http before tcp: with several ports every port has the same
    split. Only destinations whose subset is one of the two versions count, so a route to the
    bare Service (both versions alike) reports 0/0. ``matched_to_canary`` says whether some
    route with request conditions, ahead of that catch-all, sends everything to the canary.
    """
    spec = vs.get("spec") or {}
    # Routing mode Services: the routes name each version's own Service instead of a subset.
    versions = (stable_version, canary_version) if version_services else ()

    def for_service(route: Mapping[str, Any]) -> bool:
        return routes_only_to(route, service=service, namespace=namespace, versions=versions)

    def version(destination: Mapping[str, Any]) -> str | None:
        return version_of(destination, service=service, namespace=namespace, versions=versions)

    http = [route for route in spec.get("http") or [] if for_service(route)]
    tcp = [route for route in spec.get("tcp") or [] if for_service(route)]
    catch_all_index = next((i for i, route in enumerate(http) if is_catch_all(route)), len(http))
    weighted = http[catch_all_index] if catch_all_index < len(http) else next(filter(is_catch_all, tcp), None)
    weights = _weights(weighted, version) if weighted is not None else {}
    matched = any(
        {version(entry.get("destination") or {}) for entry in route["route"]} == {canary_version}
        for route in http[:catch_all_index]
    )
    return TrafficStatus(
        stable=weights.get(stable_version, 0),
        canary=weights.get(canary_version, 0),
        matched_to_canary=matched,
        mirror_percent=None if weighted is None else _mirror_percent(
            weighted, is_canary=lambda d: version(d) == canary_version and for_service({"route": [{"destination": d}]})
        ),
    )


def read_back_edge(
    vs: Mapping[str, Any], *, service: str, stable_version: str, canary_version: str, version_services: bool = False
) -> TrafficStatus:
    """The split of a VirtualService the release splits in place (a gateway's, a delegate).

    Its first route to the Service that the user wrote (not one of the release's match copies,
    whose names start with ``istio-canary-``), whatever its match.
    """
    spec = vs.get("spec") or {}
    versions = (stable_version, canary_version) if version_services else ()

    def version(destination: Mapping[str, Any]) -> str | None:
        return version_of(destination, service=service, namespace=None, versions=versions)

    for route in [*(spec.get("http") or []), *(spec.get("tcp") or [])]:
        if str(route.get("name", "")).startswith("istio-canary-"):
            continue
        if routes_only_to(route, service=service, namespace=None, versions=versions):
            weights = _weights(route, version)
            return TrafficStatus(stable=weights.get(stable_version, 0), canary=weights.get(canary_version, 0))
    return TrafficStatus()


def _weights(route: Mapping[str, Any], version: Callable[[Mapping[str, Any]], str | None]) -> dict[str, int]:
    entries = route.get("route") or []
    weights: dict[str, int] = {}
    for entry in entries:
        subset = version(entry.get("destination") or {})
        # A single destination takes everything, whatever its weight says (Istio's rule).
        weight = 100 if len(entries) == 1 else int(entry.get("weight") or 0)
        if subset is not None:
            weights[subset] = weights.get(subset, 0) + weight
    return weights


def _mirror_percent(route: Mapping[str, Any], *, is_canary: Callable[[Mapping[str, Any]], bool]) -> float | None:
    # Istio mirrors 100% when no percentage is given.
    if "mirror" in route and is_canary(route["mirror"] or {}):
        return float((route.get("mirrorPercentage") or {}).get("value", 100.0))
    for mirror in route.get("mirrors") or []:
        if is_canary(mirror.get("destination") or {}):
            return float((mirror.get("percentage") or {}).get("value", 100.0))
    return None
