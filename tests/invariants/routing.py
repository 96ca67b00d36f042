"""The routing invariants of one state: weights, subsets, ready pods, kept user routes and fields.

Written apart from the operator's own reading of routes (``istio_canary.istio.routes``), so that a
mistake there cannot hide here. Each check returns (rule, subject, message) triples; the replay
(``replay.py``) turns the new ones into violations.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.invariants.revisions import (
    DEPLOYMENT,
    DESTINATION_RULE,
    SERVICE,
    VIRTUAL_SERVICE,
    Rule,
    State,
)

__all__ = ["Finding", "kept_findings", "routing_findings", "service_of"]

Finding = tuple[Rule, str, str]
ROUTE_KINDS = ("http", "tcp", "tls")
# Fields of an http route that the release rewrites; every other field of a user's route is kept.
REWRITTEN = frozenset({"route", "match", "name", "mirror", "mirrors", "mirrorPercentage", "mirrorPercent"})


def service_of(host: str, *, namespace: str) -> str | None:
    """The Service of this namespace that ``host`` names (short, ``.ns``, ``.ns.svc...``), else None."""
    name, _, rest = host.partition(".")
    if not rest:
        return name
    ns, _, tail = rest.partition(".")
    if ns == namespace and (not tail or tail == "svc" or tail.startswith("svc.")):
        return name
    return None


def _watched_services(state: State) -> set[str]:
    """The released Services and every version's own Service (routing mode Services)."""
    names = set(state.released)
    for service, versions in state.released.items():
        names.update(f"{service}-{version}" for version in versions)
    return names


def _weights(route: Mapping[str, Any]) -> list[int]:
    destinations = route.get("route") or []
    if len(destinations) == 1 and "weight" not in destinations[0]:
        return [100]
    return [int(entry.get("weight") or 0) for entry in destinations]


def _route_targets(state: State, route: Mapping[str, Any]) -> list[str | None]:
    hosts = [str((entry.get("destination") or {}).get("host", "")) for entry in route.get("route") or []]
    return [service_of(host, namespace=state.namespace) for host in hosts]


def routing_findings(state: State) -> Iterator[Finding]:
    """Weights and destinations of every route of every VirtualService in the namespace."""
    watched = _watched_services(state)
    for name, vs in state.of(VIRTUAL_SERVICE).items():
        subject = f"{VIRTUAL_SERVICE}/{name}"
        for kind in ROUTE_KINDS:
            for index, route in enumerate((vs.get("spec") or {}).get(kind) or []):
                if not route.get("route"):
                    continue  # a redirect, a direct response or a delegate
                where = f"{kind}[{index}]"
                weights = _weights(route)
                concerns = any(target in watched for target in _route_targets(state, route))
                if sum(weights) == 0 and concerns:
                    yield Rule.NO_WEIGHT_FOR_HOST, subject, f"{where} sends no weight anywhere: {route['route']}"
                elif sum(weights) != 100:
                    yield Rule.WEIGHTS_NOT_100, subject, f"{where} weights {weights} add up to {sum(weights)}"
                for entry, weight in zip(route["route"], weights, strict=True):
                    if weight > 0:
                        yield from _destination_findings(state, entry.get("destination") or {}, subject, where, watched)


def _destination_findings(
    state: State, destination: Mapping[str, Any], subject: str, where: str, watched: set[str]
) -> Iterator[Finding]:
    service = service_of(str(destination.get("host", "")), namespace=state.namespace)
    if service is None or service not in watched:
        return
    selector = dict(((state.of(SERVICE).get(service) or {}).get("spec") or {}).get("selector") or {})
    subset = destination.get("subset")
    if subset is not None:
        labels = _subset_labels(state, service=service, subset=str(subset))
        if labels is None:
            missing = f"{where} routes to subset {subset} of {service}, which no DestinationRule defines"
            yield Rule.MISSING_SUBSET, subject, missing
            return
        selector.update(labels)
        what = f"subset {subset} of {service}"
    elif service not in state.of(SERVICE):
        if service not in state.released:
            yield Rule.MISSING_SERVICE, subject, f"{where} routes to Service {service}, which does not exist"
        return
    else:
        what = f"Service {service}"
    if selector and _ready_pods(state, selector) == 0:
        yield Rule.NO_READY_POD, subject, f"{where} sends weight to {what} ({selector}), which has no ready pod"


def _subset_labels(state: State, *, service: str, subset: str) -> dict[str, str] | None:
    for rule in state.of(DESTINATION_RULE).values():
        spec = rule.get("spec") or {}
        if service_of(str(spec.get("host", "")), namespace=state.namespace) != service:
            continue
        for entry in spec.get("subsets") or []:
            if entry.get("name") == subset:
                return dict(entry.get("labels") or {})
    return None


def _ready_pods(state: State, selector: Mapping[str, str]) -> int:
    total = 0
    for deployment in state.of(DEPLOYMENT).values():
        template = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
        labels = template.get("labels") or {}
        if all(labels.get(key) == value for key, value in selector.items()):
            total += int((deployment.get("status") or {}).get("readyReplicas") or 0)
    return total


def kept_findings(state: State) -> Iterator[Finding]:
    """What a user's routing object held when first seen and the release must keep, still there."""
    watched = _watched_services(state)
    for subject, baseline in state.baselines.items():
        kind, _, name = subject.partition("/")
        current = state.of(kind).get(name)
        if current is None:
            yield Rule.KEPT_FIELD_GONE, subject, "the user's object is gone"
            continue
        spec = current.get("spec") or {}
        if kind == VIRTUAL_SERVICE:
            yield from _kept_routes(state, subject, baseline, spec, watched)
        else:
            yield from _kept_subsets(state, subject, baseline, spec)


def _kept_routes(
    state: State, subject: str, baseline: Mapping[str, Any], spec: Mapping[str, Any], watched: set[str]
) -> Iterator[Finding]:
    for key, value in baseline.items():
        if key not in ROUTE_KINDS and spec.get(key) != value:
            yield Rule.KEPT_FIELD_GONE, subject, f"spec.{key} was {value!r}, is {spec.get(key)!r}"
    for kind in ROUTE_KINDS:
        now = list(spec.get(kind) or [])
        ours = [r for r in now if set(_route_targets(state, r)) & watched]
        for route in baseline.get(kind) or []:
            if not set(_route_targets(state, route)) & watched:
                if route not in now:
                    yield Rule.KEPT_ROUTE_GONE, subject, f"{kind} route {route!r} is gone"
                continue
            kept = {k: v for k, v in route.items() if k not in REWRITTEN}
            if kept and not any(all(r.get(k) == v for k, v in kept.items()) for r in ours):
                yield Rule.KEPT_FIELD_GONE, subject, f"no {kind} route to the Service keeps {kept!r}"


def _kept_subsets(
    state: State, subject: str, baseline: Mapping[str, Any], spec: Mapping[str, Any]
) -> Iterator[Finding]:
    for key, value in baseline.items():
        if key != "subsets" and spec.get(key) != value:
            yield Rule.KEPT_FIELD_GONE, subject, f"spec.{key} was {value!r}, is {spec.get(key)!r}"
    service = service_of(str(baseline.get("host", "")), namespace=state.namespace) or ""
    released_versions = state.released.get(service, set())
    now = spec.get("subsets") or []
    for entry in baseline.get("subsets") or []:
        if entry.get("name") not in released_versions and entry not in now:
            yield Rule.KEPT_FIELD_GONE, subject, f"subset {entry!r} is gone"
