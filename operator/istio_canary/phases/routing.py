"""The routing a decision writes: the plan for the two versions and the objects built from it."""

from __future__ import annotations

from typing import Any

from istio_canary import actions as act
from istio_canary.istio import destination_rule, edge, ownership, version_services, virtual_service
from istio_canary.istio import plan as routeplan
from istio_canary.istio.plan import RoutePlan, StickySession
from istio_canary.models import RoutingMode
from istio_canary.phases.model import Context

__all__ = [
    "plan",
    "release_version_services",
    "routing_actions",
    "routing_name",
    "routing_written",
    "version_services_pending",
]


def plan(
    ctx: Context,
    *,
    stable_weight: int,
    canary_weight: int,
    match: tuple[Any, ...] = (),
    mirror: float | None = None,
    subsets: tuple[str, ...] | None = None,
    version_services: bool | None = None,
    sticky: StickySession | None = None,
) -> RoutePlan:
    """The plan for this split; ``version_services`` None: as ``spec.routing.mode`` says."""
    spec = ctx.spec
    if version_services is None:
        version_services = spec.routing.mode is RoutingMode.SERVICES
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
        version_services=version_services,
        sticky=sticky,
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
    objects = (
        act.ApplyRouting(kind="DestinationRule", body=dr), act.ApplyRouting(kind="VirtualService", body=vs), *edges
    )
    if not route_plan.version_services:
        return objects
    # Routing mode Services: the versions' own Services before the routes that name them, and
    # the released Service pinned to the version that has all the traffic once they do.
    return (*_version_services(ctx, route_plan), *objects, *_pin(ctx, route_plan))


def version_services_pending(ctx: Context, route_plan: RoutePlan) -> tuple[act.Action, ...]:
    """The versions' own Services still to create before any route may name them (routing mode Services).

    A Service made in the same write as the routes to it would have no endpoints in Envoy yet:
    requests for it would fail until the mesh caught up. So they are created first, alone.
    """
    if not route_plan.version_services:
        return ()
    have = {o["metadata"]["name"] for o in ctx.observed.version_services}
    return tuple(a for a in _version_services(ctx, route_plan) if a.body["metadata"]["name"] not in have)


def release_version_services(ctx: Context) -> tuple[act.Action, ...]:
    """Undo routing mode Services once no route names them: the selector the user wrote comes
    back, then the versions' own Services go."""
    unpin = version_services.unpin_patch(ctx.observed.service) if ctx.observed.service is not None else None
    restore = (act.PatchObject(kind="Service", name=ctx.spec.service, patch=unpin),) if unpin is not None else ()
    gone = tuple(
        act.DeleteObject(kind="Service", name=obj["metadata"]["name"])
        for obj in ctx.observed.version_services
        if version_services.is_ours(obj, release_name=ctx.release.name)
    )
    return (*restore, *gone)


def _version_services(ctx: Context, route_plan: RoutePlan) -> tuple[act.ApplyService, ...]:
    assert ctx.observed.service is not None
    existing = {o["metadata"]["name"]: o for o in ctx.observed.version_services}
    bodies = (
        version_services.build_version_service(
            service=ctx.observed.service,
            version=version,
            version_label=ctx.spec.version_label,
            release_name=ctx.release.name,
            existing=existing.get(version_services.version_service_name(ctx.spec.service, version)),
        )
        for version in route_plan.subsets
    )
    return tuple(act.ApplyService(body=body) for body in bodies)


def _pin(ctx: Context, route_plan: RoutePlan) -> tuple[act.Action, ...]:
    assert ctx.observed.service is not None
    # Stable keeps clients outside the mesh until the canary has every request.
    version = route_plan.canary_version if route_plan.canary_weight == 100 else route_plan.stable_version
    patch = version_services.pin_patch(ctx.observed.service, version_label=ctx.spec.version_label, version=version)
    return (act.PatchObject(kind="Service", name=ctx.spec.service, patch=patch),) if patch is not None else ()


def routing_written(ctx: Context) -> bool:
    """Has this release already written (created or adopted) the VirtualService?"""
    vs = ctx.observed.virtual_service
    labels = (vs or {}).get("metadata", {}).get("labels") or {}
    return labels.get(ownership.RELEASE_LABEL) == ctx.release.name


def routing_name(obj: dict[str, Any] | None, default: str) -> str:
    return str(obj["metadata"]["name"]) if obj is not None else default
