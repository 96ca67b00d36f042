"""The routing a decision writes: the plan for the two versions and the objects built from it."""

from __future__ import annotations

from typing import Any

from istio_canary import actions as act
from istio_canary.istio import destination_rule, edge, ownership, virtual_service
from istio_canary.istio import plan as routeplan
from istio_canary.istio.plan import RoutePlan
from istio_canary.phases.model import Context

__all__ = ["bypass_paths", "plan", "routing_actions", "routing_name", "routing_written"]


def plan(
    ctx: Context,
    *,
    stable_weight: int,
    canary_weight: int,
    match: tuple[Any, ...] = (),
    mirror: float | None = None,
    subsets: tuple[str, ...] | None = None,
) -> RoutePlan:
    spec = ctx.spec
    return RoutePlan(
        service=spec.service,
        namespace=ctx.release.namespace,
        version_label=spec.version_label,
        stable_version=spec.stable.version,
        canary_version=spec.canary.version,
        subsets=subsets if subsets is not None else (spec.stable.version, spec.canary.version),
        stable_weight=stable_weight,
        canary_weight=canary_weight,
        match=match,
        mirror_percent=mirror,
    )


def routing_actions(ctx: Context, route_plan: RoutePlan) -> tuple[act.Action, ...]:
    """DestinationRule first (subsets exist before routes use them), then the VirtualServices.

    The release's own VirtualService, then every other one that routes to the Service
    (gateway-bound, delegates, listed ones), each split in place.
    """
    ports = list(ctx.ports) or routeplan.service_ports(ctx.observed.service or {})
    dr = destination_rule.build_destination_rule(
        plan=route_plan, existing=ctx.observed.destination_rule, release_name=ctx.release.name
    )
    vs = virtual_service.build_virtual_service(
        plan=route_plan, ports=ports, existing=ctx.observed.virtual_service, release_name=ctx.release.name
    )
    edges = tuple(
        act.ApplyRouting(
            kind="VirtualService",
            body=edge.split_in_place(plan=route_plan, existing=obj, release_name=ctx.release.name),
            namespace=obj["metadata"].get("namespace"),
        )
        for obj in ctx.observed.edge_virtual_services
    )
    return (act.ApplyRouting(kind="DestinationRule", body=dr), act.ApplyRouting(kind="VirtualService", body=vs), *edges)


def routing_written(ctx: Context) -> bool:
    """Has this release already written (created or adopted) the VirtualService?"""
    vs = ctx.observed.virtual_service
    labels = (vs or {}).get("metadata", {}).get("labels") or {}
    return labels.get(ownership.RELEASE_LABEL) == ctx.release.name


def routing_name(obj: dict[str, Any] | None, default: str) -> str:
    return str(obj["metadata"]["name"]) if obj is not None else default


def bypass_paths(service: dict[str, Any] | None) -> str:
    """How clients can reach the Service's pods without Envoy's routes ("" when none is seen).

    Such traffic is balanced by the Service's selector over both versions' pods, whatever the
    weights: a NodePort or LoadBalancer Service is reached from outside the mesh, and so are
    external IPs. (A namespace without sidecar injection, or another ingress controller, is not
    visible from the Service alone.)
    """
    spec = (service or {}).get("spec") or {}
    paths = []
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        paths.append(f"the Service is of type {spec['type']}")
    if spec.get("externalIPs"):
        paths.append("the Service has externalIPs")
    if not paths:
        return ""
    return (
        f"{' and '.join(paths)}: clients that reach it from outside the mesh are balanced over both "
        "versions' pods by the selector, whatever the weights"
    )
