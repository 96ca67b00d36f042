"""Finding the release's workloads in what was observed, and whether the canary may get traffic."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from istio_canary import errors, workloads
from istio_canary.istio import plan as routeplan
from istio_canary.models import Phase, Policy
from istio_canary.phases.model import Context

__all__ = ["canary_routable", "image_changed", "new_image_goes_out", "resolve_workloads", "survivor_ready"]


def resolve_workloads(ctx: Context, *, stable_may_be_gone: bool = False) -> Context:
    """``ctx`` with the Service's ports, the stable Deployment and the canary (if it exists).

    Raises an ``InvalidSpecError`` subclass when the Service or the stable Deployment cannot be
    found, or when the canary's name is taken by a Deployment this release did not create.
    """
    spec, observed = ctx.spec, ctx.observed
    if observed.service is None:
        raise errors.ServiceNotFoundError(
            f"Service {ctx.release.namespace}/{spec.service} not found: "
            "spec.service must name a Service in the release's namespace"
        )
    selector = dict(observed.service.get("spec", {}).get("selector") or {})
    stable: dict[str, Any] | None
    try:
        stable = workloads.find_stable_deployment(
            deployments=list(observed.deployments),
            service_selector=selector,
            version_label=spec.version_label,
            version=spec.stable.version,
        )
    except errors.StableDeploymentNotFoundError:
        if not stable_may_be_gone:
            raise
        stable = None
    canary_name = workloads.canary_deployment_name(spec)
    canary = next((d for d in observed.deployments if d["metadata"]["name"] == canary_name), None)
    if canary is not None and not workloads.is_created_by(
        deployment=canary, release_namespace=ctx.release.namespace, release_name=ctx.release.name
    ):
        raise errors.DeploymentConflictError(
            f"Deployment {canary_name} already exists and was not created by this release; "
            "the operator never overwrites a Deployment it did not create: "
            "delete it or choose another canary.version"
        )
    ports = tuple(routeplan.service_ports(observed.service))
    return replace(ctx, ports=ports, stable=stable, canary=canary)


def image_changed(ctx: Context) -> bool:
    """Did the user ask for a new canary image since the canary last received traffic?"""
    previous = ctx.previous.canary_revision
    return previous is not None and previous != workloads.canary_revision(ctx.spec)


def new_image_goes_out(ctx: Context, *, canary_body: dict[str, Any]) -> bool:
    """Does this decision write a new image into the existing canary (the rollout starts now)?"""
    if ctx.canary is None:
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
        stored_current = workloads.deployment_patch(current=ctx.canary, desired=canary_body) is None
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
