"""The VirtualService that splits a Service's traffic between its stable and canary versions.

Per routed port of the Service:

- one ``http`` route per match rule, named ``istio-canary-<release>-<port>-match-<i>``,
  sending matching requests to the canary subset;
- with sticky sessions (``plan.sticky``), one ``http`` route named
  ``istio-canary-<release>-<port>-sticky`` that sends requests carrying the session cookie to the
  canary (``istio.sticky``);
- one weighted ``http`` route, named ``istio-canary-<release>-<port>-weighted``, that splits
  the rest by weight and may mirror to the canary (with sticky sessions, the canary's
  destination sets the cookie on its responses);
- for TCP (and protocol-sniffed) ports, one weighted ``tcp`` route (tcp routes have no name).

All match routes (of every port) come before all sticky routes, and those before all weighted
routes.

Destinations with weight 0 are left out, and a single destination carries no weight (an
implicit 100): every Istio version accepts that, and the VirtualService then never names a
subset that takes no traffic, so a subset can be removed from the DestinationRule right after
the routes stop using it. With more than one Service port, every match entry carries
``port: N`` and every destination ``port.number: N``.

Adopting an existing VirtualService: the routes "for this service" are replaced and every
other route and field is kept. A route is for this service when it forwards (it has a
``route`` list and no redirect, direct response or delegate), *every* destination names
this Service's host (short name or FQDN in the Service's namespace), whatever its match or
port, and names no subset other than the release's two versions. A route that splits between
this host and another is someone else's and stays; so does a route to a third version with
request conditions (Istio's samples send user jason to reviews v2), and a catch-all one to a
third version is refused with a RoutingError, since the release's split could never apply.
The operator's routes take the place of the last replaced route: a foreign route that came
before it still does, so none is shadowed by the new catch-all, and one that came after still
comes after. (Keeping a single slot is what makes rebuilding an adopted object give the same
result as building from the original: after the first build, only that slot is left.)
Per port, the last replaced catch-all route that applies to that port (the default route the
user wrote; failing one, the last replaced route) lends its ``timeout``, ``retries``,
``fault``, ``headers``, ``corsPolicy`` and ``rewrite`` to every generated route, and its
mirror too when it mirrors elsewhere and the plan does not mirror. Destination-level fields
of the replaced routes (per-destination ``headers``) are not carried over.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from istio_canary.errors import RoutingError
from istio_canary.istio import sticky
from istio_canary.istio.destination_rule import API_VERSION
from istio_canary.istio.match import match_requests
from istio_canary.istio.ownership import starting_point
from istio_canary.istio.plan import PortKind, RoutePlan, ServicePort
from istio_canary.istio.routes import (
    MIRROR_FIELDS,
    is_catch_all,
    is_service_host,
    routes_only_to,
    subsets_of,
    version_service_name,
)

__all__ = ["build_virtual_service", "check_expressible", "route_name_prefix"]

_CARRIED_FIELDS = ("corsPolicy", "fault", "headers", "retries", "rewrite", "timeout")
_HTTP_KINDS = (PortKind.HTTP, PortKind.SNIFFED)
_TCP_KINDS = (PortKind.TCP, PortKind.SNIFFED)


def route_name_prefix(release_name: str) -> str:
    """The prefix of every http route name the release writes."""
    return f"istio-canary-{release_name}-"


def build_virtual_service(
    *,
    plan: RoutePlan,
    ports: Sequence[ServicePort],
    existing: Mapping[str, Any] | None,
    release_name: str,
) -> dict[str, Any]:
    """The VirtualService to write for ``plan``, as a JSON-ready dict.

    Raises RoutingError when the plan cannot be expressed for these ports: no port Istio
    routes, an invalid regex in a match rule, or match rules or mirroring on an opaque TCP port.
    """
    routed = _routed_ports(ports)
    # Match rules are translated once: they are the same on every port.
    requests_per_rule = check_expressible(plan=plan, ports=ports)
    multi_port = len(ports) > 1

    start = starting_point(
        existing=existing, name=plan.service, namespace=plan.namespace, release_name=release_name
    )
    spec: dict[str, Any] = start.spec if start.spec is not None else {"hosts": [plan.service]}

    ours = _ours(plan, release_name=release_name)
    for key in ("http", "tcp"):
        _refuse_shadowing(spec.get(key) or [], plan=plan, ours=ours, name=start.metadata.get("name"))

    # Fields are inherited from the user's original routes, not from the current object:
    # the operator's own routes may have dropped some (a mirror replaced by the plan's).
    original_routes = [route for route in (start.original or {}).get("http") or [] if ours(route)]
    http_routes, tcp_routes = _routes(
        plan, ports=routed, multi_port=multi_port, requests_per_rule=requests_per_rule,
        original_routes=original_routes, prefix=route_name_prefix(release_name),
    )
    _splice(spec, "http", http_routes, ours=ours)
    _splice(spec, "tcp", tcp_routes, ours=ours)
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualService",
        "metadata": start.metadata,
        "spec": spec,
    }


def _ours(plan: RoutePlan, *, release_name: str) -> Callable[[Mapping[str, Any]], bool]:
    """Which routes the release replaces: its own, and those that forward only to its two versions."""
    versions: set[str | None] = {plan.stable_version, plan.canary_version, None}

    def ours(route: Mapping[str, Any]) -> bool:
        if str(route.get("name", "")).startswith(route_name_prefix(release_name)):
            return True
        # A route to a third version of the Service (Istio's samples route reviews v1, v2 and v3)
        # is the user's: kept, or refused when it would take every request.
        return routes_only_to(
            route, service=plan.service, namespace=plan.namespace, versions=plan.version_hosts_of
        ) and not (subsets_of(route) - versions)

    return ours


def _refuse_shadowing(
    routes: Sequence[Mapping[str, Any]],
    *,
    plan: RoutePlan,
    ours: Callable[[Mapping[str, Any]], bool],
    name: object,
) -> None:
    """Raise RoutingError for a kept catch-all route to another version of the Service.

    Such a route takes every request that reaches it: the release's split could never apply
    (placed after it) or would silently take its requests (placed before it).
    """
    versions: set[str | None] = {plan.stable_version, plan.canary_version, None}
    for index, route in enumerate(routes):
        if ours(route) or not is_catch_all(route):
            continue
        if not routes_only_to(route, service=plan.service, namespace=plan.namespace, versions=plan.version_hosts_of):
            continue
        others = sorted(str(subset) for subset in subsets_of(route) - versions)
        raise RoutingError(
            f"VirtualService {name}: route {index} sends every request for {plan.service} to "
            f"subset(s) {', '.join(others)}, neither stable {plan.stable_version} nor "
            f"canary {plan.canary_version}; the release would take those requests. Route them by a "
            "request match (kept as they are), or release from that version"
        )


def _routes(
    plan: RoutePlan,
    *,
    ports: Sequence[ServicePort],
    multi_port: bool,
    requests_per_rule: list[list[dict[str, Any]]],
    original_routes: list[dict[str, Any]],
    prefix: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The http routes (every match route, then every sticky-session route, then every weighted
    one) and the tcp routes, per port."""
    match_routes: list[dict[str, Any]] = []
    session_routes: list[dict[str, Any]] = []
    weighted_routes: list[dict[str, Any]] = []
    tcp_routes: list[dict[str, Any]] = []
    for port in ports:
        number = port.port if multi_port else None
        if port.kind in _HTTP_KINDS:
            template = _template(original_routes, port=port.port, plan=plan)
            named = f"{prefix}{port.port}"
            match_routes += _match_routes(plan, requests_per_rule, number=number, template=template, prefix=named)
            session_routes += _session_route(plan, number=number, template=template, prefix=named)
            weighted_routes.append(_weighted_route(plan, number=number, template=template, prefix=named))
        if port.kind in _TCP_KINDS:
            tcp_routes.append(_tcp_route(plan, number=number))
    return match_routes + session_routes + weighted_routes, tcp_routes


def check_expressible(
    *, plan: RoutePlan, ports: Sequence[ServicePort]
) -> list[list[dict[str, Any]]]:
    """Raise RoutingError when ``plan`` cannot be routed on ``ports``, as the builder would.

    The state machine calls this with the routing the spec asks for before the canary is
    ready, so a bad rule is reported before anything is written rather than once traffic
    would start to move. Returns the HTTPMatchRequests of each match rule.
    """
    _check_ports(plan, _routed_ports(ports))
    return [match_requests(rule, path=f"traffic.match[{i}]") for i, rule in enumerate(plan.match)]


def _routed_ports(ports: Sequence[ServicePort]) -> list[ServicePort]:
    routed = (port for port in ports if port.kind is not PortKind.UNROUTED)
    return sorted(routed, key=lambda p: p.port)


def _check_ports(plan: RoutePlan, routed: Sequence[ServicePort]) -> None:
    if not routed:
        raise RoutingError(f"Service {plan.service!r} has no TCP port, and Istio routes only TCP")
    opaque = [port.label for port in routed if port.kind is PortKind.TCP]
    if not opaque:
        return
    hint = (
        f"port {', '.join(opaque)} of Service {plan.service!r} carries opaque TCP, where Istio "
        "cannot see requests (name the port http-... or set appProtocol if it serves HTTP)"
    )
    if plan.match:
        raise RoutingError(f"traffic.match: {hint}")
    if plan.mirror_percent is not None:
        raise RoutingError(f"traffic.mirrorPercent: {hint}")


def _destination(plan: RoutePlan, version: str, *, number: int | None) -> dict[str, Any]:
    destination = plan.destination(version)
    if number is not None:
        destination["port"] = {"number": number}
    return destination


def _weighted(plan: RoutePlan, *, number: int | None, http: bool = True) -> list[dict[str, Any]]:
    """The destinations by weight; on an http route, the canary's sets the session cookie (if any)."""
    entries = [
        {
            "destination": _destination(plan, version, number=number),
            "weight": plan.weight_of(version),
            **(sticky.entry_headers(plan, version) if http else {}),
        }
        for version in (plan.stable_version, plan.canary_version)
        if plan.weight_of(version) > 0
    ]
    if len(entries) == 1:
        del entries[0]["weight"]
    return entries


def _match_routes(
    plan: RoutePlan,
    requests_per_rule: Sequence[Sequence[dict[str, Any]]],
    *,
    number: int | None,
    template: Mapping[str, Any],
    prefix: str,
) -> list[dict[str, Any]]:
    """One route per match rule, to the canary (``number`` None: a one-port Service)."""
    port_match = {} if number is None else {"port": number}
    routes = []
    for index, requests in enumerate(requests_per_rule):
        route = copy.deepcopy(dict(template))
        route.update(
            name=f"{prefix}-match-{index}",
            match=[dict(request) | port_match for request in requests],
            route=[{"destination": _destination(plan, plan.canary_version, number=number)}],
        )
        routes.append(route)
    return routes


def _session_route(
    plan: RoutePlan, *, number: int | None, template: Mapping[str, Any], prefix: str
) -> list[dict[str, Any]]:
    """The sticky-session route of one port: requests carrying the canary's cookie, to the canary."""
    if plan.sticky is None:
        return []
    route = copy.deepcopy(dict(template))
    port_match = {} if number is None else {"port": number}
    route.update(
        name=f"{prefix}-sticky",
        match=[sticky.cookie_request(plan.sticky) | port_match],
        route=[{"destination": _destination(plan, plan.canary_version, number=number)}],
    )
    return [route]


def _weighted_route(
    plan: RoutePlan, *, number: int | None, template: Mapping[str, Any], prefix: str
) -> dict[str, Any]:
    """The catch-all route of one port: the weights, and the mirror when the plan mirrors."""
    route = copy.deepcopy(dict(template))
    route.update(name=f"{prefix}-weighted", route=_weighted(plan, number=number))
    if number is not None:
        route["match"] = [{"port": number}]
    if plan.mirror_percent is not None:
        route["mirror"] = _destination(plan, plan.canary_version, number=number)
        route["mirrorPercentage"] = {"value": float(plan.mirror_percent)}
    return route


def _tcp_route(plan: RoutePlan, *, number: int | None) -> dict[str, Any]:
    route: dict[str, Any] = {"route": _weighted(plan, number=number, http=False)}
    if number is not None:
        route["match"] = [{"port": number}]
    return route


def _applies_to_port(route: Mapping[str, Any], port: int) -> bool:
    """Whether a route may carry requests for ``port``, judged by its match, then destinations."""
    requests = route.get("match") or []
    if requests and all("port" in request for request in requests):
        return any(request["port"] == port for request in requests)
    numbers = [
        ((entry.get("destination") or {}).get("port") or {}).get("number")
        for entry in route.get("route") or []
    ]
    if numbers and None not in numbers:
        return port in numbers
    return True


def _template(
    replaced: Sequence[Mapping[str, Any]], *, port: int, plan: RoutePlan
) -> dict[str, Any]:
    """The fields generated routes inherit from a replaced route that applies to ``port``.

    The last catch-all one is the default route the user wrote for the port; failing that,
    the last one.
    """
    candidates = [route for route in replaced if _applies_to_port(route, port)]
    if not candidates:
        return {}
    source = ([route for route in candidates if is_catch_all(route)] or candidates)[-1]
    template = {key: source[key] for key in _CARRIED_FIELDS if key in source}
    # A mirror to this Service is the operator's business (possibly its own mirror from an
    # earlier plan); only a mirror elsewhere is the user's, and only when the plan does not mirror.
    if plan.mirror_percent is None and not _mirrors_to_service(source, plan):
        template |= {key: source[key] for key in MIRROR_FIELDS if key in source}
    return template


def _mirrors_to_service(route: Mapping[str, Any], plan: RoutePlan) -> bool:
    hosts = [str((route.get("mirror") or {}).get("host", ""))] if "mirror" in route else []
    hosts += [
        str((entry.get("destination") or {}).get("host", ""))
        for entry in route.get("mirrors") or []
    ]
    owned = (plan.service, *(version_service_name(plan.service, v) for v in plan.version_hosts_of))
    return any(is_service_host(host, service=name, namespace=plan.namespace) for host in hosts for name in owned)


def _splice(
    spec: dict[str, Any],
    key: str,
    generated: list[dict[str, Any]],
    *,
    ours: Callable[[Mapping[str, Any]], bool],
) -> None:
    """Put ``generated`` where the last replaced route of ``spec[key]`` was (else at the end).

    The list is dropped when it ends up empty: Istio treats a missing list and an empty one
    alike, and a missing one keeps rebuilds equal.
    """
    existing = spec.get(key) or []
    kept = [route for route in existing if not ours(route)]
    replaced_at = [index for index, route in enumerate(existing) if ours(route)]
    # The last replaced route's index in ``kept``: its index minus the replaced routes before it.
    at = replaced_at[-1] - (len(replaced_at) - 1) if replaced_at else len(kept)
    routes = kept[:at] + generated + kept[at:]
    if routes:
        spec[key] = routes
    else:
        spec.pop(key, None)
