"""Finding the release's workloads in what was observed, and whether the canary may get traffic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from istio_canary import errors, workloads
from istio_canary.istio import plan as routeplan
from istio_canary.models import Phase, Policy
from istio_canary.phases.model import Context

__all__ = [
    "canary_name",
    "canary_routable",
    "image_changed",
    "new_image_goes_out",
    "resolve_workloads",
    "revision",
    "survivor_ready",
]


def resolve_workloads(ctx: Context, *, stable_may_be_gone: bool = False, canary_may_be_gone: bool = False) -> Context:
    """``ctx`` with the Service's ports, the stable Deployment and the canary (if it exists).

    Raises an ``InvalidSpecError`` subclass when the Service or the stable Deployment cannot be
    found, when the canary's name is taken by a Deployment this release did not create, or when
    a provided canary cannot be found. The ``*_may_be_gone`` flags are for after job offline,
    which removes one of the two on purpose.
    """
    spec, observed = ctx.spec, ctx.observed
    if observed.service is None:
        raise errors.ServiceNotFoundError(
            f"Service {ctx.release.namespace}/{spec.service} not found: "
            "spec.service must name a Service in the release's namespace"
        )
    selector = dict(observed.service.get("spec", {}).get("selector") or {})
    stable = _maybe_gone(stable_may_be_gone, lambda: workloads.find_stable_deployment(
        deployments=list(observed.deployments),
        service_selector=selector,
        version_label=spec.version_label,
        version=spec.stable.version,
    ))
    if spec.canary.provided:
        canary = _maybe_gone(canary_may_be_gone, lambda: _provided_canary(ctx, selector))
    else:
        canary = _created_canary(ctx)
    _check_listed_routing(ctx)
    ports = tuple(routeplan.service_ports(observed.service))
    return replace(ctx, ports=ports, stable=stable, canary=canary)


def _check_listed_routing(ctx: Context) -> None:
    """Every VirtualService that ``spec.routing.virtualServices`` lists must be there to split."""
    seen = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in ctx.observed.edge_virtual_services}
    primary = ctx.observed.virtual_service
    if primary is not None:
        seen.add((ctx.release.namespace, primary["metadata"]["name"]))
    for ref in ctx.spec.routing.virtual_services:
        where = ref.namespace or ctx.release.namespace
        if (where, ref.name) not in seen:
            raise errors.RoutingError(
                f"spec.routing.virtualServices: VirtualService {where}/{ref.name} not found, or in a "
                "namespace the operator does not watch (run it with --namespace for that one too, or cluster-wide)"
            )


def _maybe_gone(may_be_gone: bool, find: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return find()
    except (errors.StableDeploymentNotFoundError, errors.CanaryDeploymentNotFoundError):
        if not may_be_gone:
            raise
        return None


def _created_canary(ctx: Context) -> dict[str, Any] | None:
    """The canary this release created, if it exists yet; its name taken by another is an error."""
    canary_name = workloads.canary_deployment_name(ctx.spec)
    canary = next((d for d in ctx.observed.deployments if d["metadata"]["name"] == canary_name), None)
    if canary is not None and not workloads.is_created_by(
        deployment=canary, release_namespace=ctx.release.namespace, release_name=ctx.release.name
    ):
        raise errors.DeploymentConflictError(
            f"Deployment {canary_name} already exists and was not created by this release; "
            "the operator never overwrites a Deployment it did not create: delete it, choose another "
            "canary.version, or leave canary.image out to release to that Deployment as it is"
        )
    return canary


def _provided_canary(ctx: Context, selector: dict[str, str]) -> dict[str, Any]:
    """The Deployment someone else deployed for the canary; one another live release made is refused."""
    spec = ctx.spec
    canary = workloads.find_provided_canary(
        deployments=list(ctx.observed.deployments),
        service_selector=selector,
        version_label=spec.version_label,
        version=spec.canary.version,
        name=spec.canary.deployment,
    )
    owner = (canary["metadata"].get("annotations") or {}).get(workloads.RELEASE_ANNOTATION)
    if (canary["metadata"].get("labels") or {}).get(workloads.MANAGED_BY_LABEL) == workloads.MANAGED_BY and owner:
        raise errors.DeploymentConflictError(
            f"Deployment {canary['metadata']['name']} is the canary of release {owner}, "
            "which is still under way: wait for it to complete"
        )
    return canary


def canary_name(ctx: Context) -> str:
    """The canary Deployment's name: the resolved one, else the one the spec implies."""
    return str(ctx.canary["metadata"]["name"]) if ctx.canary is not None else workloads.canary_deployment_name(ctx.spec)


def revision(ctx: Context) -> str:
    """The canary's images as a short hash (those the spec names, or those of a provided canary)."""
    return workloads.canary_revision(ctx.spec, provided=ctx.canary if ctx.spec.canary.provided else None)


def image_changed(ctx: Context) -> bool:
    """Did the user ask for a new canary image since the canary last received traffic?"""
    previous = ctx.previous.canary_revision
    return previous is not None and previous != revision(ctx)


def new_image_goes_out(ctx: Context, *, canary_body: dict[str, Any]) -> bool:
    """Does this decision write a new image into the existing canary (the rollout starts now)?"""
    if ctx.canary is None or ctx.spec.canary.provided:
        return False
    patch = workloads.deployment_patch(current=ctx.canary, desired=canary_body) or {}
    return bool(patch.get("spec", {}).get("template", {}).get("spec"))


def canary_routable(ctx: Context, *, canary_body: dict[str, Any]) -> bool:
    """May the canary receive traffic? Full rollout first under WaitForWorkloadReady.

    After an image change on a live release, the old image's pods are still ready while the
    new ones roll out: no traffic until every pod runs the image now asked for.
    """
    if ctx.canary is None or not workloads.has_ready_pods(ctx.canary):
        return False
    if image_changed(ctx) and ctx.spec.policy is not Policy.IMMEDIATELY:
        # A provided canary is stored as its owner wrote it; one the release makes, once patched.
        stored_current = (
            ctx.spec.canary.provided or workloads.deployment_patch(current=ctx.canary, desired=canary_body) is None
        )
        return stored_current and workloads.rolled_out(ctx.canary)
    if ctx.spec.policy is Policy.WAIT_FOR_WORKLOAD_READY and ctx.previous.phase not in (
        Phase.PROGRESSING,
        Phase.TAKEN_OVER,
        Phase.PAUSED,
    ):
        desired = int(ctx.canary.get("spec", {}).get("replicas", 1))
        return workloads.ready_replicas(ctx.canary) >= max(desired, 1)
    return True


def survivor_ready(ctx: Context, survivor: str) -> bool:
    survivor_dep = ctx.canary if survivor == ctx.spec.canary.version else ctx.stable
    return survivor_dep is not None and workloads.has_ready_pods(survivor_dep)
