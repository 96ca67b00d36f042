"""Build the CanaryRelease status from a decision and what the cluster stores (pure).

``status.traffic`` is read back from the stored VirtualService, never copied from the plan:
what users see is what Envoy would get.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pydantic

from istio_canary import workloads
from istio_canary.hooks import plan as hooks_plan
from istio_canary.istio import restore
from istio_canary.models import (
    CanaryReleaseSpec,
    CanaryReleaseStatus,
    Condition,
    ConditionType,
    Phase,
    Reason,
    Role,
    RoutedObject,
    RoutingMode,
    TrafficStatus,
    VersionMetrics,
    VersionStatus,
)
from istio_canary.models.hooks import GateKind, WebhookCall
from istio_canary.models.merge_patch import merge_patch
from istio_canary.phases import Decision

__all__ = ["build_status", "previous_status", "set_condition", "status_patch", "summary_conditions"]


def set_condition(
    conditions: Sequence[Condition],
    *,
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Replace or add one condition; lastTransitionTime moves only when the status flips."""
    value = "Unknown" if status is None else ("True" if status else "False")
    kept = [c for c in conditions if c.type != type_]
    previous = next((c for c in conditions if c.type == type_), None)
    since = previous.last_transition_time if previous is not None and previous.status == value else now.isoformat()
    new = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return sorted([*kept, new], key=lambda c: c.type)


def build_status(
    *,
    spec: CanaryReleaseSpec,
    previous: CanaryReleaseStatus,
    decision: Decision,
    deployments: Sequence[Mapping[str, Any]],
    virtual_service: Mapping[str, Any] | None,
    metrics: Mapping[str, VersionMetrics] | None,
    edge_virtual_services: Sequence[Mapping[str, Any]] = (),
    metrics_stale: bool = False,
    webhook_calls: Sequence[tuple[str, WebhookCall]] = (),
    generation: int,
    now: datetime,
) -> CanaryReleaseStatus:
    """The status after ``decision``; ``webhook_calls``: the calls this reconcile made, with their entries."""
    traffic = _traffic(spec, virtual_service)
    return CanaryReleaseStatus(
        phase=decision.phase,
        observed_generation=generation,
        message=decision.message,
        traffic=traffic,
        routing=_routing(spec, virtual_service, edge_virtual_services),
        versions=_versions(
            spec, previous=previous, decision=decision, deployments=deployments, traffic=traffic,
            metrics=metrics or {}, metrics_stale=metrics_stale,
        ),
        conditions=_conditions(spec, previous=previous, decision=decision, now=now, generation=generation),
        analysis=decision.analysis if decision.analysis is not None else previous.analysis,
        success_rate=_success_rate(spec, previous=previous, metrics=metrics or {}),
        canary_revision=decision.canary_revision or previous.canary_revision,
        drain=decision.drain,
        # A transient error on an aborted release keeps who aborted it (an analysis rollback stays one).
        abort_reason=decision.abort_reason or (previous.abort_reason if decision.phase is Phase.ABORTED else None),
        webhooks=hooks_plan.record(
            decision.webhooks if decision.webhooks is not None else previous.webhooks, webhook_calls
        ),
        gate=decision.gate,
    )


def _versions(
    spec: CanaryReleaseSpec,
    *,
    previous: CanaryReleaseStatus,
    decision: Decision,
    deployments: Sequence[Mapping[str, Any]],
    traffic: TrafficStatus | None,
    metrics: Mapping[str, VersionMetrics],
    metrics_stale: bool,
) -> list[VersionStatus]:
    by_name = {d["metadata"]["name"]: d for d in deployments}
    versions: list[VersionStatus] = []
    for version, role in ((spec.stable.version, Role.STABLE), (spec.canary.version, Role.CANARY)):
        name = _deployment_name(spec, role=role, decision=decision, deployments=deployments)
        dep = by_name.get(name) if name else None
        if dep is None and decision.phase is Phase.COMPLETED:
            continue  # taken offline
        weight = 0
        if traffic is not None:
            weight = traffic.stable if role is Role.STABLE else traffic.canary
        versions.append(
            VersionStatus(
                version=version,
                role=role,
                deployment=name or "",
                managed=role is Role.CANARY and not spec.canary.provided,
                replicas=int((dep or {}).get("spec", {}).get("replicas", 0) or 0),
                ready_replicas=workloads.ready_replicas(dep) if dep else 0,
                weight=weight,
                metrics=metrics.get(version) or _previous_metrics(previous, version, stale=metrics_stale),
            )
        )
    return versions


def _conditions(
    spec: CanaryReleaseSpec, *, previous: CanaryReleaseStatus, decision: Decision, now: datetime, generation: int
) -> list[Condition]:
    def put(conditions: list[Condition], type_: ConditionType, ok: bool, reason: str, message: str) -> list[Condition]:
        return set_condition(
            conditions, type_=type_.value, status=ok, reason=reason, message=message, now=now, generation=generation
        )

    invalid = decision.invalid
    conditions = put(
        list(previous.conditions), ConditionType.SPEC_VALID, not invalid,
        _reason(decision) if invalid else "Valid", decision.message if invalid else "",
    )
    if decision.canary_ready is not None:
        ready = decision.canary_ready
        conditions = put(
            conditions, ConditionType.CANARY_READY, ready, "PodsReady" if ready else "NoReadyPods",
            "" if ready else f"Deployment for {spec.canary.version} has no ready pod",
        )
    if spec.webhooks or (spec.analysis is not None and spec.analysis.approvals):
        gate = decision.gate
        conditions = put(
            conditions, ConditionType.GATED, gate is not None, _reason(decision) if gate else "NotHeld",
            decision.message if gate else "",
        )
    if decision.bypass is not None:
        conditions = put(
            conditions, ConditionType.MESH_ONLY, not decision.bypass,
            "MeshBypass" if decision.bypass else "NoBypassSeen", decision.bypass,
        )
    return summary_conditions(
        conditions, decision=decision, previous=previous,
        analysis_running=spec.analysis is not None, now=now, generation=generation,
    )


def summary_conditions(
    conditions: Sequence[Condition],
    *,
    decision: Decision,
    previous: CanaryReleaseStatus,
    analysis_running: bool,
    now: datetime,
    generation: int,
) -> list[Condition]:
    """Ready, Reconciling and Stalled: what `kubectl wait`, Flux (kstatus) and Argo CD read.

    Exactly one tells the state: Stalled (cannot go on as asked), Ready (ended as asked), or
    Reconciling (the operator is working by itself); with all three False the release holds what
    the spec asks and waits for a person's next change. Each carries the release's reason and
    message. ``analysis_running``: the spec has an analysis, which moves the weight by itself.
    """
    stalled = _stalled(decision, previous)
    ended = not stalled and decision.phase.is_final
    # A gate that waits only for a person's approval waits for the next change, like a pause.
    person = decision.gate is not None and decision.gate.waiting_for == [GateKind.APPROVAL]
    reconciling = not (stalled or ended or person) and (
        decision.phase in (Phase.PENDING, Phase.WAITING_FOR_CANARY)
        or decision.requeue_after is not None
        or (analysis_running and decision.phase is Phase.PROGRESSING)
    )
    reason, message = _reason(decision), decision.message
    for type_, value in ((ConditionType.READY, ended), (ConditionType.RECONCILING, reconciling),
                         (ConditionType.STALLED, stalled)):
        conditions = set_condition(
            conditions, type_=type_.value, status=value, reason=reason, message=message, now=now, generation=generation
        )
    return list(conditions)


def _stalled(decision: Decision, previous: CanaryReleaseStatus) -> bool:
    """Failed, or rolled back by the analysis or a webhook (while rolling back and once Aborted)."""
    abort_reason = decision.abort_reason
    if abort_reason is None and decision.phase is Phase.ABORTED:
        abort_reason = previous.abort_reason  # a transient error on an aborted release keeps who aborted it
    return decision.phase is Phase.FAILED or abort_reason in (Reason.ANALYSIS_FAILED, Reason.WEBHOOK_ROLLBACK)


def _success_rate(
    spec: CanaryReleaseSpec, *, previous: CanaryReleaseStatus, metrics: Mapping[str, VersionMetrics]
) -> float | None:
    canary = metrics.get(spec.canary.version)
    if canary is not None and canary.success_rate is not None:
        return round(canary.success_rate, 2)  # already a percentage
    return previous.success_rate


def _reason(decision: Decision) -> str:
    return decision.reason.value if isinstance(decision.reason, Reason) else decision.reason


def _traffic(spec: CanaryReleaseSpec, vs: Mapping[str, Any] | None) -> TrafficStatus | None:
    return _read_back(spec, vs, edge=False) if vs is not None else None


def _read_back(spec: CanaryReleaseSpec, vs: Mapping[str, Any], *, edge: bool) -> TrafficStatus:
    read = restore.read_back_edge if edge else restore.read_back_traffic
    return read(
        dict(vs),
        service=spec.service,
        stable_version=spec.stable.version,
        canary_version=spec.canary.version,
        version_services=spec.routing.mode is RoutingMode.SERVICES,
    )


def _routing(
    spec: CanaryReleaseSpec, primary: Mapping[str, Any] | None, edges: Sequence[Mapping[str, Any]]
) -> list[RoutedObject]:
    """Every VirtualService the release splits, with the weights each one holds now."""
    routed = []
    objects: list[Mapping[str, Any]] = [o for o in (primary, *edges) if o is not None]
    for vs in objects:
        meta = vs.get("metadata", {})
        traffic = _read_back(spec, vs, edge=vs is not primary)
        routed.append(RoutedObject(
            kind="VirtualService", namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")),
            stable=traffic.stable, canary=traffic.canary,
        ))
    return routed


def _deployment_name(
    spec: CanaryReleaseSpec, *, role: Role, decision: Decision, deployments: Sequence[Mapping[str, Any]]
) -> str | None:
    canary = workloads.canary_deployment_name(spec)
    chosen = decision.canary_deployment if role is Role.CANARY else decision.stable_deployment
    if chosen is not None:
        return chosen
    if role is Role.CANARY and not (spec.canary.provided and spec.canary.deployment is None):
        return canary
    version = spec.canary.version if role is Role.CANARY else spec.stable.version
    for dep in deployments:
        labels = dep.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
        if labels.get(spec.version_label) == version and (role is Role.CANARY or dep["metadata"]["name"] != canary):
            return str(dep["metadata"]["name"])
    return canary if role is Role.CANARY else None


def _previous_metrics(previous: CanaryReleaseStatus, version: str, *, stale: bool) -> VersionMetrics | None:
    """The last good values; marked stale when the latest query failed."""
    for v in previous.versions:
        if v.version == version and v.metrics is not None:
            return v.metrics.model_copy(update={"stale": True}) if stale else v.metrics
    return None


def previous_status(body: Mapping[str, Any]) -> CanaryReleaseStatus:
    raw = body.get("status") or {}
    raw = {k: v for k, v in raw.items() if k in _STATUS_KEYS}
    try:
        return CanaryReleaseStatus.model_validate(raw)
    except pydantic.ValidationError:
        # A status written by an older operator version: start from scratch rather than crash.
        return CanaryReleaseStatus()


_STATUS_KEYS = {f.alias or n for n, f in CanaryReleaseStatus.model_fields.items()}


def status_patch(*, previous: Mapping[str, Any], status: CanaryReleaseStatus) -> dict[str, Any] | None:
    """The JSON merge patch from the stored status to ``status`` (None: nothing to write).

    A merge patch merges nested objects, so a key that is gone (``traffic.mirrorPercent`` once
    the mirror is removed) must be sent as null, at every depth, or the stored value stays.
    """
    wire = status.to_wire()
    known = {k: v for k, v in previous.items() if k in _STATUS_KEYS}
    return merge_patch(known, wire) or None
