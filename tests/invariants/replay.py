"""Replaying recorded revisions in etcd's order and checking every state they pass through."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tests.invariants.revisions import (
    RELEASE,
    VIRTUAL_SERVICE,
    Revision,
    Rule,
    State,
    Violation,
    in_order,
)
from tests.invariants.routing import Finding, kept_findings, routing_findings, service_of

__all__ = ["DEFAULT_STATUS_GRACE", "replay", "status_disagreements"]

# How long status.traffic may lag behind the stored routes: one reconcile on a loaded machine.
DEFAULT_STATUS_GRACE = 15.0


def replay(
    revisions: Iterable[Revision], *, namespace: str, status_grace: float = DEFAULT_STATUS_GRACE,
    ended_at: float | None = None, gaps: Sequence[tuple[int, int]] = (),
) -> list[Violation]:
    """Every violation, once, at the first revision where it holds.

    A violation that lasts is reported once; one that goes away and comes back is reported
    again. ``ended_at`` (the monitor's stop time) closes a status disagreement still open then.
    ``gaps`` are resourceVersion windows (after, until] in which a watch was broken (the API
    server was down): some revisions of them were never seen, so states inside are not judged;
    whatever still holds after a window is.
    """
    state = State(namespace=namespace)
    active: set[Finding] = set()
    found: list[Violation] = []
    disagreeing_since: dict[str, float] = {}
    last = 0
    for revision in in_order(revisions):
        state.apply(revision)
        last = revision.resource_version
        if any(after < last <= until for after, until in gaps):
            continue
        now = {*routing_findings(state), *kept_findings(state)}
        found.extend(Violation(rule, subject, msg, last) for rule, subject, msg in sorted(now - active))
        active = now
        found.extend(_late_status(state, disagreeing_since, revision.seen_at, status_grace, last))
    if ended_at is not None:
        found.extend(_late_status(state, disagreeing_since, ended_at, status_grace, last))
    return found


def _late_status(
    state: State, since: dict[str, float], now: float, grace: float, resource_version: int
) -> list[Violation]:
    """Disagreements that have lasted longer than ``grace``; each is reported once, then forgotten."""
    current = status_disagreements(state)
    for name in list(since):
        if name not in current:
            del since[name]
    late = []
    for name, message in current.items():
        started = since.setdefault(name, now)
        if now - started > grace and started != float("inf"):
            late.append(Violation(Rule.STATUS_DISAGREES, f"{RELEASE}/{name}", message, resource_version))
            since[name] = float("inf")  # reported: not again until it agrees once more
    return late


def status_disagreements(state: State) -> dict[str, str]:
    """Releases whose status.traffic matches no stored route to their Service, with what they say."""
    out = {}
    for name, release in state.of(RELEASE).items():
        if (release.get("metadata") or {}).get("deletionTimestamp"):
            continue
        spec, status = release.get("spec") or {}, release.get("status") or {}
        traffic = status.get("traffic")
        if not isinstance(traffic, dict) or not isinstance(spec.get("service"), str):
            continue
        splits = _splits(state, spec)
        said = (int(traffic.get("stable") or 0), int(traffic.get("canary") or 0))
        if splits and said not in splits:
            out[name] = f"status.traffic says stable/canary {said}, the stored routes hold {sorted(splits)}"
    return out


def _splits(state: State, spec: Mapping[str, Any]) -> set[tuple[int, int]]:
    """(stable, canary) weights of every route to the Service that names at least one version."""
    service = str(spec["service"])
    stable = str((spec.get("stable") or {}).get("version", ""))
    canary = str((spec.get("canary") or {}).get("version", ""))
    own = {service, f"{service}-{stable}", f"{service}-{canary}"}
    splits = set()
    for vs in state.of(VIRTUAL_SERVICE).values():
        for kind in ("http", "tcp"):
            for route in (vs.get("spec") or {}).get(kind) or []:
                weights = _version_weights(route, namespace=state.namespace, service=service, own=own)
                if weights is not None:
                    splits.add((weights.get(stable, 0), weights.get(canary, 0)))
    return splits


def _version_weights(
    route: Mapping[str, Any], *, namespace: str, service: str, own: set[str]
) -> dict[str, int] | None:
    destinations = route.get("route") or []
    weights: dict[str, int] = {}
    for entry in destinations:
        destination = entry.get("destination") or {}
        target = service_of(str(destination.get("host", "")), namespace=namespace)
        if target not in own:
            return None
        version = destination.get("subset") or (target[len(service) + 1 :] if target != service else None)
        if version is None:
            return None
        weight = entry.get("weight", 100 if len(destinations) == 1 else 0)
        weights[str(version)] = weights.get(str(version), 0) + int(weight)
    return weights or None
