"""The DestinationRule that defines one subset per version of the Service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from istio_canary.istio.ownership import starting_point
from istio_canary.istio.plan import RoutePlan
from istio_canary.models.marks import ISTIO_API_VERSION

__all__ = ["API_VERSION", "build_destination_rule"]

API_VERSION = ISTIO_API_VERSION


def build_destination_rule(
    *, plan: RoutePlan, existing: Mapping[str, Any] | None, release_name: str
) -> dict[str, Any]:
    """The DestinationRule to write for ``plan``, as a JSON-ready dict.

    Subsets are named after versions and select ``{versionLabel: version}``. When ``existing``
    (a DestinationRule for the same host that the operator did not create) is given, it is
    adopted: only the subsets named after the release's two versions change (a same-named
    subset keeps its own ``trafficPolicy``); every other field and subset stays as it was.
    """
    start = starting_point(
        existing=existing, name=plan.service, namespace=plan.namespace, release_name=release_name
    )
    spec: dict[str, Any] = start.spec if start.spec is not None else {"host": plan.service}
    # Subset policies come from the user's original, which still has a subset that job
    # offline has since removed from the current object.
    originals = (start.original or {}).get("subsets") or []
    spec["subsets"] = _merge_subsets(plan, spec.get("subsets") or [], originals=originals)
    return {
        "apiVersion": API_VERSION,
        "kind": "DestinationRule",
        "metadata": start.metadata,
        "spec": spec,
    }


def _merge_subsets(
    plan: RoutePlan, existing: list[dict[str, Any]], *, originals: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Replace the release's subsets in place, add the missing ones after them, keep the others.

    Both versions count as the release's, not only those in ``plan.subsets``: job offline
    removes a version's subset by leaving it out of the plan. A subset the object lacks goes
    right after the last of the release's subsets it has (else at the end), so the others keep
    their order, and rebuilding from the adopted object gives what building from the original did.
    """
    ours = {plan.stable_version, plan.canary_version}
    previous = {subset.get("name"): subset for subset in originals if subset.get("name") in ours}
    wanted = {version: _subset(plan, version, previous.get(version)) for version in plan.subsets}
    present = {subset.get("name") for subset in existing}

    merged: list[dict[str, Any]] = []
    after_ours: int | None = None
    for subset in existing:
        name = subset.get("name")
        if name not in ours:
            merged.append(subset)
            continue
        if name in wanted:
            merged.append(wanted[name])
        after_ours = len(merged)
    missing = [body for version, body in wanted.items() if version not in present]
    at = len(merged) if after_ours is None else after_ours
    return merged[:at] + missing + merged[at:]


def _subset(plan: RoutePlan, version: str, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    subset: dict[str, Any] = {"name": version, "labels": {plan.version_label: version}}
    if previous is not None and "trafficPolicy" in previous:
        subset["trafficPolicy"] = previous["trafficPolicy"]
    return subset
