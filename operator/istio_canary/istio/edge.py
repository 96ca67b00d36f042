"""Splitting the other VirtualServices that route to the released host, route by route.

The release's own VirtualService (the one whose ``hosts`` name the Service) gets the operator's
routes (``virtual_service``). Every other VirtualService that routes to the host (bound to an
ingress gateway, a delegate that a root VirtualService hands routes to, one listed in
``spec.routing.virtualServices``, in any namespace) is split *in place*: each route whose
destinations are the host keeps its name, match, rewrite, timeout, retries and every other
field, and only its destinations change to the plan's weighted subsets (host and port as the
user wrote them). Traffic rules (``traffic.match``) become copies of that route, just before
it, whose matches are the route's own matches AND the rule's, sending to the canary; so does
the session cookie of sticky sessions (``istio.sticky``), whose Set-Cookie the canary's
destination in the split route adds.

Each result is computed from the object as it is now, so edits made to it during a release
(in Git, say) are kept; a rebuild gives the same object, the match copies are regenerated (they
carry the release's name), and a route's own mirror comes back from the recorded original once
the plan stops mirroring. Every other route, host, gateway and field stays as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from istio_canary.errors import RoutingError
from istio_canary.istio import sticky
from istio_canary.istio.match import match_requests
from istio_canary.istio.ownership import starting_point
from istio_canary.istio.plan import RoutePlan
from istio_canary.istio.routes import (
    MIRROR_FIELDS,
    routes_only_to,
    subsets_of,
    version_service_name,
)
from istio_canary.models.marks import ISTIO_API_VERSION

__all__ = ["routes_to_host", "split_in_place"]



def routes_to_host(vs: Mapping[str, Any], *, service: str, namespace: str) -> bool:
    """Does some http or tcp route of ``vs`` forward only to the Service (so a release splits it)?"""
    spec = vs.get("spec") or {}
    return any(
        routes_only_to(route, service=service, namespace=namespace)
        for key in ("http", "tcp")
        for route in spec.get(key) or []
    )


def split_in_place(*, plan: RoutePlan, existing: Mapping[str, Any], release_name: str) -> dict[str, Any]:
    """``existing`` (adopted) with every route to the Service split as ``plan`` says.

    Raises ``ForeignObjectError`` when another release holds the object, and ``RoutingError``
    when a rule cannot be combined with a route's own match.
    """
    meta = existing.get("metadata", {})
    namespace = str(meta.get("namespace") or plan.namespace)
    start = starting_point(
        existing=existing, name=str(meta.get("name")), namespace=namespace, release_name=release_name
    )
    spec = copy.deepcopy(start.spec if start.spec is not None else dict(existing.get("spec") or {}))
    requests_per_rule = [match_requests(rule, path=f"traffic.match[{i}]") for i, rule in enumerate(plan.match)]
    ours = _ours(plan, same_namespace=namespace == plan.namespace)
    prefix = f"istio-canary-{release_name}-edge-"
    originals = [r for r in (start.original or {}).get("http") or [] if not str(r.get("name", "")).startswith(prefix)]
    kept = [r for r in spec.get("http") or [] if not str(r.get("name", "")).startswith(prefix)]
    http: list[dict[str, Any]] = []
    for index, route in enumerate(kept):
        if not ours(route):
            http.append(route)
            continue
        original = originals[index] if index < len(originals) else {}
        http += _matched_copies(plan, route, requests_per_rule, name=f"{prefix}{index}")
        http += _session_copy(plan, route, name=f"{prefix}{index}-sticky")
        http.append(_split(plan, route, original=original))
    if http:
        spec["http"] = http
    if spec.get("tcp"):
        spec["tcp"] = [_split(plan, route, original=None) if ours(route) else route for route in spec["tcp"]]
    return {"apiVersion": ISTIO_API_VERSION, "kind": "VirtualService", "metadata": start.metadata, "spec": spec}


def _ours(plan: RoutePlan, *, same_namespace: bool) -> Callable[[Mapping[str, Any]], bool]:
    """Routes to the Service's two versions; from another namespace, a short name is another Service."""
    versions: set[str | None] = {plan.stable_version, plan.canary_version, None}

    def ours(route: Mapping[str, Any]) -> bool:
        routed = routes_only_to(route, service=plan.service, namespace=plan.namespace, versions=plan.version_hosts_of)
        if not routed or subsets_of(route) - versions:
            return False
        hosts = {(entry.get("destination") or {}).get("host") for entry in route.get("route") or []}
        return same_namespace or plan.service not in hosts

    return ours


def _destination(plan: RoutePlan, template: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The user's destination (host and port as written) for one version's subset.

    In routing mode Services, the version's own Service, qualified as the user qualified the host
    (``productpage.bookinfo.svc.cluster.local`` -> ``productpage-v2.bookinfo.svc.cluster.local``).
    """
    destination = {k: copy.deepcopy(v) for k, v in template.items() if k in ("host", "port")}
    if not plan.version_services:
        destination["subset"] = version
        return destination
    host = str(template.get("host", ""))
    names = (*(version_service_name(plan.service, v) for v in plan.version_hosts_of), plan.service)
    suffix = next((host[len(name):] for name in names if host == name or host.startswith(name + ".")), "")
    destination["host"] = version_service_name(plan.service, version) + suffix
    return destination


def _split(plan: RoutePlan, route: Mapping[str, Any], *, original: Mapping[str, Any] | None) -> dict[str, Any]:
    """``route`` with its destinations replaced by the plan's weights, and the plan's mirror.

    ``original`` is the route as the user wrote it (None for tcp routes, which cannot mirror):
    once the plan stops mirroring, the user's own mirror comes back.
    """
    template = (route["route"][0].get("destination") or {})
    entries = [
        {
            "destination": _destination(plan, template, version),
            "weight": plan.weight_of(version),
            # An http route's canary sets the session cookie (tcp routes have no headers).
            **(sticky.entry_headers(plan, version) if original is not None else {}),
        }
        for version in (plan.stable_version, plan.canary_version)
        if plan.weight_of(version) > 0
    ]
    if len(entries) == 1:
        del entries[0]["weight"]
    split = dict(copy.deepcopy(route))
    split["route"] = entries
    if original is None:
        return split
    for key in MIRROR_FIELDS:
        split.pop(key, None)
    if plan.mirror_percent is not None:
        split["mirror"] = _destination(plan, template, plan.canary_version)
        split["mirrorPercentage"] = {"value": float(plan.mirror_percent)}
    else:
        split |= {key: copy.deepcopy(original[key]) for key in MIRROR_FIELDS if key in original}
    return split


def _matched_copies(
    plan: RoutePlan, route: Mapping[str, Any], requests_per_rule: Sequence[Sequence[dict[str, Any]]], *, name: str
) -> list[dict[str, Any]]:
    """One copy of ``route`` per traffic rule, matching the route's own matches AND the rule, to the canary."""
    if not requests_per_rule or plan.canary_version not in plan.subsets:
        return []
    template = (route["route"][0].get("destination") or {})
    own = route.get("match") or [{}]
    copies = []
    for index, requests in enumerate(requests_per_rule):
        matched = dict(copy.deepcopy(route))
        for key in MIRROR_FIELDS:
            matched.pop(key, None)
        matched["name"] = f"{name}-match-{index}"
        matched["match"] = [_both(mine, theirs, path=f"traffic.match[{index}]") for mine in own for theirs in requests]
        matched["route"] = [{"destination": _destination(plan, template, plan.canary_version)}]
        copies.append(matched)
    return copies


def _session_copy(plan: RoutePlan, route: Mapping[str, Any], *, name: str) -> list[dict[str, Any]]:
    """With sticky sessions, a copy of ``route`` that also matches the session cookie, to the canary."""
    if plan.sticky is None:
        return []
    template = (route["route"][0].get("destination") or {})
    cookie = sticky.cookie_request(plan.sticky)
    copied = dict(copy.deepcopy(route))
    for key in MIRROR_FIELDS:
        copied.pop(key, None)
    copied["name"] = name
    copied["match"] = [_both(mine, cookie, path="traffic.sessionAffinity") for mine in route.get("match") or [{}]]
    copied["route"] = [{"destination": _destination(plan, template, plan.canary_version)}]
    return [copied]


def _both(route_match: Mapping[str, Any], rule: Mapping[str, Any], *, path: str) -> dict[str, Any]:
    """One HTTPMatchRequest that holds when both do; a field both set differently cannot be combined."""
    both = copy.deepcopy(dict(route_match))
    for key, value in rule.items():
        if key in ("headers", "withoutHeaders", "queryParams"):
            merged = dict(both.get(key) or {})
            for name, condition in value.items():
                if name in merged and merged[name] != condition:
                    raise RoutingError(f"{path}: {key}.{name} is also matched by a route it is combined with")
                merged[name] = condition
            both[key] = merged
        elif key in both and both[key] != value:
            raise RoutingError(
                f"{path}: its {key} condition cannot be combined with a route that matches {key} itself "
                f"({both[key]}); Istio has one {key} condition per match"
            )
        else:
            both[key] = copy.deepcopy(value)
    return both

