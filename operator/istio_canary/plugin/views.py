"""Pure renderers of CanaryRelease and Event objects (plain dicts) into rich renderables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from istio_canary.plugin.patches import Body

__all__ = ["RECENT_EVENTS", "age", "render_releases", "render_status", "weight_bar"]

RECENT_EVENTS = 10


def weight_bar(weight: int, *, width: int = 20) -> str:
    """``█████···············  25%``: a fixed-width bar that reads the same in any terminal."""
    weight = max(0, min(100, weight))
    filled = round(weight * width / 100)
    return f"{'█' * filled}{'·' * (width - filled)} {weight:>3}%"


def age(timestamp: str | None, *, now: datetime) -> str:
    """Kubernetes-style age (``45s``, ``12m``, ``3h``, ``4d``) of an RFC 3339 timestamp."""
    if not timestamp:
        return "-"
    then = datetime.fromisoformat(timestamp)  # Python 3.11 reads the trailing "Z" itself
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _version_weight(release: Body, role: str) -> str:
    """``v1 70%``: version from the spec, weight as read back into the status."""
    version = release.get("spec", {}).get(role, {}).get("version", "?")
    traffic = release.get("status", {}).get("traffic") or {}
    weight = traffic.get(role)
    return f"{version} {weight}%" if weight is not None else f"{version} -"


def render_releases(releases: Sequence[Body], *, now: datetime, all_namespaces: bool) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    if all_namespaces:
        table.add_column("NAMESPACE")
    for column in ("NAME", "STRATEGY", "PHASE", "STABLE", "CANARY", "TAKEOVER", "AGE"):
        table.add_column(column)
    for release in sorted(
        releases, key=lambda r: (r["metadata"].get("namespace", ""), r["metadata"]["name"])
    ):
        meta, spec = release["metadata"], release.get("spec", {})
        row = [
            meta["name"],
            spec.get("strategy", "Canary"),
            release.get("status", {}).get("phase", "Pending"),
            _version_weight(release, "stable"),
            _version_weight(release, "canary"),
            spec.get("takeOver") or "-",
            age(meta.get("creationTimestamp"), now=now),
        ]
        table.add_row(*([meta.get("namespace", "")] if all_namespaces else []), *row)
    return table


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _versions_table(status: Body) -> Table:
    table = Table(title="Versions", title_justify="left", header_style="bold")
    for column in (
        "VERSION",
        "ROLE",
        "DEPLOYMENT",
        "READY",
        "WEIGHT",
        "RPS",
        "SUCCESS",
        "P50",
        "P99",
    ):
        table.add_column(column)
    for entry in status.get("versions", []):
        metrics = entry.get("metrics") or {}
        success = metrics.get("successRate")
        provided = entry.get("role") == "canary" and entry.get("managed") is False
        table.add_row(
            entry.get("version", "?"),
            entry.get("role", "?"),
            entry.get("deployment", "-") + (" (yours)" if provided else ""),
            f"{entry.get('readyReplicas', 0)}/{entry.get('replicas', 0)}",
            weight_bar(int(entry.get("weight", 0))),
            _number(metrics.get("requestRate"), ".2f"),
            "-" if success is None else f"{success:.2f}%",  # already a percentage
            _number(metrics.get("latencyP50Ms"), ".0f")
            + ("ms" if metrics.get("latencyP50Ms") is not None else ""),
            _number(metrics.get("latencyP99Ms"), ".0f")
            + ("ms" if metrics.get("latencyP99Ms") is not None else ""),
            style="dim" if metrics.get("stale") else None,
        )
    return table


def _routing_table(status: Body) -> Table | None:
    """Every VirtualService the release splits, when there is more than its own."""
    routed = status.get("routing") or []
    if len(routed) < 2:
        return None
    table = Table(title="Routing", title_justify="left", header_style="bold")
    for column in ("VIRTUALSERVICE", "STABLE", "CANARY"):
        table.add_column(column)
    for entry in routed:
        table.add_row(
            f"{entry.get('namespace', '?')}/{entry.get('name', '?')}",
            f"{entry.get('stable', 0)}%",
            f"{entry.get('canary', 0)}%",
        )
    return table


def _gate_line(name: str, status: Body) -> Text | None:
    """The gate the release holds at, and how to open it."""
    gate = status.get("gate")
    if not gate:
        return None
    line = Text.assemble(("gated ", "bold yellow"), f"at {gate.get('gate', '?')}")
    if gate.get("webhooks"):
        line.append(f": waiting for webhook(s) {', '.join(gate['webhooks'])}")
    approve = gate.get("approve")
    if approve:
        line.append(f"; approve with `kubectl canary approve {name}` (canary revision {approve.get('canaryRevision')})")
    return line


def _webhooks_table(status: Body) -> Table | None:
    """The latest webhook calls and how they ended."""
    calls = (status.get("webhooks") or {}).get("calls") or []
    if not calls:
        return None
    table = Table(title="Webhooks", title_justify="left", header_style="bold")
    for column in ("WEBHOOK", "TYPE", "GATE", "RESULT", "TIME"):
        table.add_column(column)
    for call in calls[-RECENT_EVENTS:]:
        table.add_row(
            call.get("name", "?"), call.get("type", "?"), call.get("gate", ""),
            Text(call.get("result", ""), style="" if call.get("ok") else "yellow"), call.get("time", ""),
        )
    return table


def _events_table(events: Sequence[Body], *, now: datetime) -> Table:
    table = Table(title="Events", title_justify="left", header_style="bold")
    for column in ("TYPE", "REASON", "AGE", "MESSAGE"):
        table.add_column(column)

    def when(event: Body) -> str:
        return str(
            event.get("lastTimestamp")
            or event.get("eventTime")
            or event["metadata"].get("creationTimestamp")
            or ""
        )

    for event in sorted(events, key=when)[-RECENT_EVENTS:]:
        kind = event.get("type", "Normal")
        table.add_row(
            Text(kind, style="yellow" if kind == "Warning" else ""),
            event.get("reason", ""),
            age(when(event) or None, now=now),
            event.get("message", ""),
        )
    return table


def _matched_note(spec: Body) -> str:
    """What sends requests to the canary ahead of the weights: match rules, the sticky-session cookie."""
    traffic = spec.get("traffic") or {}
    sticky = traffic.get("sessionAffinity")
    causes = ["traffic.match rules"] if traffic.get("match") or not sticky else []
    if sticky:
        causes.append(f"the {sticky.get('cookieName')} cookie of sticky sessions")
    return f"requests matching {' or '.join(causes)} go to the canary"


def render_status(release: Body, events: Sequence[Body], *, now: datetime) -> RenderableType:
    """Phase, weights as bars, per-version traffic health, and the latest Events."""
    meta, spec = release["metadata"], release.get("spec", {})
    status = release.get("status", {})
    phase = status.get("phase", "Pending")
    colour = {"Failed": "red", "Aborted": "yellow", "Completed": "green", "TakenOver": "green"}.get(
        phase, "cyan"
    )
    header = Text.assemble(
        (f"{meta.get('namespace', '')}/{meta['name']}", "bold"),
        "  ",
        (phase, f"bold {colour}"),
        f"  strategy={spec.get('strategy', 'Canary')} policy={spec.get('policy', 'WaitForWorkloadReady')}",
    )
    if spec.get("takeOver"):
        header.append(f" takeOver={spec['takeOver']}")
    if spec.get("offline"):
        header.append(" offline")
    if spec.get("abort"):
        header.append(" abort", style="yellow")
    parts: list[RenderableType] = [header]
    if status.get("message"):
        parts.append(Text(status["message"], style="italic"))
    traffic = status.get("traffic") or {}
    for role in ("stable", "canary"):
        version = spec.get(role, {}).get("version", "?")
        parts.append(
            Text(f"{role:<7}{version:<12}{weight_bar(int(traffic.get(role, 0)), width=40)}")
        )
    if traffic.get("mirrorPercent") is not None:
        parts.append(Text(f"mirroring {traffic['mirrorPercent']}% of requests to the canary"))
    if traffic.get("matchedToCanary"):
        parts.append(Text(_matched_note(spec)))
    gate = _gate_line(meta["name"], status)
    if gate is not None:
        parts.append(gate)
    parts.append(_versions_table(status))
    webhooks = _webhooks_table(status)
    if webhooks is not None:
        parts.append(webhooks)
    routing = _routing_table(status)
    if routing is not None:
        parts.append(routing)
    parts.append(_events_table(events, now=now))
    return Group(*parts)
