"""What the pages show, as JSON-ready dicts built from stored objects. (pure)

Releases and Events come in as the API server's JSON; nothing here reads a clock (``now`` is
an argument) or the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["Body", "health", "release_detail", "release_row", "timeline", "verdicts"]

Body = Mapping[str, Any]


def _age_seconds(timestamp: str | None, *, now: datetime) -> int | None:
    if not timestamp:
        return None
    return max(0, int((now - datetime.fromisoformat(timestamp)).total_seconds()))


def _condition(status: Body, kind: str) -> Body:
    return next((c for c in status.get("conditions") or () if c.get("type") == kind), {})


def health(status: Body) -> dict[str, Any]:
    """``ok``, ``warning`` or ``failing``, with the release-wide success rate (percent) if known.

    Failing: phase Failed, or the Stalled condition (an analysis rollback included). Warning:
    the canary is not ready or the metrics are not available. Ok otherwise.
    """
    rate = status.get("successRate")
    if status.get("phase") == "Failed" or _condition(status, "Stalled").get("status") == "True":
        state = "failing"
    elif any(_condition(status, kind).get("status") == "False" for kind in ("CanaryReady", "MetricsAvailable")):
        state = "warning"
    else:
        state = "ok"
    return {"state": state, "successRate": rate}


def release_row(release: Body, *, now: datetime) -> dict[str, Any]:
    """One line of the release list."""
    meta, spec = release.get("metadata", {}), release.get("spec", {})
    status = release.get("status") or {}
    traffic = status.get("traffic") or {}
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "service": spec.get("service", ""),
        "strategy": spec.get("strategy", "Canary"),
        "phase": status.get("phase", "Pending"),
        "stable": {"version": spec.get("stable", {}).get("version"), "weight": traffic.get("stable")},
        "canary": {"version": spec.get("canary", {}).get("version"), "weight": traffic.get("canary")},
        "takeOver": spec.get("takeOver") or "",
        "ageSeconds": _age_seconds(meta.get("creationTimestamp"), now=now),
        "health": health(status),
    }


def timeline(release: Body, events: Iterable[Body]) -> list[dict[str, Any]]:
    """Conditions' transitions and the release's Events, oldest first."""
    status = release.get("status") or {}
    entries = [
        {
            "time": c.get("lastTransitionTime"),
            "source": "condition",
            "reason": f"{c.get('type')}={c.get('status')}: {c.get('reason', '')}",
            "message": c.get("message", ""),
        }
        for c in status.get("conditions") or ()
        if c.get("lastTransitionTime")
    ]
    for event in events:
        when = event.get("lastTimestamp") or event.get("eventTime") or event.get("metadata", {}).get(
            "creationTimestamp"
        )
        entries.append(
            {
                "time": when,
                "source": "event",
                "type": event.get("type", "Normal"),
                "reason": event.get("reason", ""),
                "message": event.get("message", ""),
                "count": event.get("count", 1),
            }
        )
    return _merge_repeats(sorted(entries, key=lambda e: str(e["time"] or "")))


def _merge_repeats(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events that say the same thing at the same second (several replicas, retries) become one
    entry with their counts added."""
    merged: list[dict[str, Any]] = []
    for entry in entries:
        last = merged[-1] if merged else None
        same = ("time", "source", "reason", "message")
        if last is not None and entry["source"] == "event" and all(last.get(k) == entry.get(k) for k in same):
            last["count"] = int(last.get("count") or 1) + int(entry.get("count") or 1)
        else:
            merged.append(dict(entry))
    return merged


def verdicts(release: Body) -> list[dict[str, Any]]:
    """The analysis' looks at the metrics, step by step, newest last."""
    analysis = (release.get("status") or {}).get("analysis") or {}
    keep = ("time", "step", "weight", "verdict", "reason", "stableRequests", "stableErrors",
            "canaryRequests", "canaryErrors", "stableLatencyMs", "canaryLatencyMs")  # fmt: skip
    return [{key: look.get(key) for key in keep} for look in analysis.get("history") or ()]


def release_detail(release: Body, events: Sequence[Body], *, now: datetime) -> dict[str, Any]:
    """Everything the release page shows besides the charts."""
    status = release.get("status") or {}
    spec = release.get("spec", {})
    return {
        **release_row(release, now=now),
        "message": status.get("message", ""),
        "policy": spec.get("policy", "WaitForWorkloadReady"),
        "weight": (spec.get("traffic") or {}).get("weight"),
        "offline": bool(spec.get("offline")),
        "abort": bool(spec.get("abort")),
        "analysis": bool(spec.get("analysis")),
        "versions": [
            {key: v.get(key) for key in ("version", "role", "deployment", "replicas", "readyReplicas", "weight")}
            for v in status.get("versions") or ()
        ],
        "timeline": timeline(release, events),
        "verdicts": verdicts(release),
    }
