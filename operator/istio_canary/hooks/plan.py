"""Which webhook calls are due, what they send, and what their answers leave in status (pure).

A call is identified by its webhook's name and its *gate* (``confirm-rollout``, ``pre-rollout``,
``weight-50``, ``promotion``, ``rollback``, ``post-rollout``, ``event``). Its result is kept in
``status.webhooks`` under ``name/gate@revision`` (``passed`` or ``failed``), so a gate passed for
one canary revision does not count for the next, and a restarted operator knows what was answered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from istio_canary import actions as act
from istio_canary.models import CanaryReleaseSpec, Phase, TrafficStatus
from istio_canary.models.hooks import HookType, Webhook, WebhookCall, WebhooksStatus

__all__ = [
    "CALLS_KEPT",
    "DEFAULT_EVERY_SECONDS",
    "answered",
    "build_call",
    "call_events",
    "checksum",
    "failed_look",
    "hooks_of",
    "key",
    "next_due_in",
    "record",
    "spec_interval",
]

CALLS_KEPT = 20
KEYS_KEPT = 64
# How often a gate's hook is asked again, and a Rollback hook polled, without an analysis.
DEFAULT_EVERY_SECONDS = 10.0


def hooks_of(spec: CanaryReleaseSpec, kind: HookType) -> list[Webhook]:
    return [hook for hook in spec.webhooks if hook.type is kind]


def spec_interval(spec: CanaryReleaseSpec) -> float:
    """Seconds between two calls of a hook that is asked again: the analysis interval, else 10."""
    return float(spec.analysis.interval_seconds) if spec.analysis is not None else DEFAULT_EVERY_SECONDS


def key(name: str, gate: str, revision: str = "") -> str:
    return f"{name}/{gate}@{revision}" if revision else f"{name}/{gate}"


def checksum(spec: CanaryReleaseSpec) -> str:
    """A short hash of the spec as the user wrote it (an approval alone does not change it)."""
    wire = {k: v for k, v in spec.to_wire().items() if k != "approve"}
    return hashlib.sha256(json.dumps(wire, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def answered(status: WebhooksStatus | None, entry: str) -> bool | None:
    """True: the call of ``entry`` (a :func:`key`) answered 2xx; False: it failed; None: no answer yet."""
    if status is None:
        return None
    if entry in status.passed:
        return True
    return False if entry in status.failed else None


def next_due_in(status: WebhooksStatus | None, *, name: str, gate: str, now: datetime, every: float) -> float:
    """Seconds until the hook ``name`` may be called again for ``gate`` (0: now)."""
    last = None
    for call in reversed(status.calls if status is not None else ()):
        if call.name == name and call.gate == gate:
            last = datetime.fromisoformat(call.time)
            break
    if last is None:
        return 0.0
    return max(0.0, (last + timedelta(seconds=every) - now).total_seconds())


def build_call(
    hook: Webhook,
    *,
    gate: str,
    entry: str,
    namespace: str,
    name: str,
    spec: CanaryReleaseSpec,
    phase: Phase,
    traffic: TrafficStatus | None,
    revision: str,
) -> act.CallWebhook:
    """The call of ``hook`` with its JSON payload; its result is recorded under ``entry``."""
    payload = {
        "name": name,
        "namespace": namespace,
        "phase": phase.value,
        "type": hook.type.value,
        "webhook": hook.name,
        "gate": gate,
        "checksum": checksum(spec),
        "canaryRevision": revision,
        "stable": {"version": spec.stable.version, "weight": traffic.stable if traffic is not None else 100},
        "canary": {"version": spec.canary.version, "weight": traffic.canary if traffic is not None else 0},
        "metadata": dict(hook.metadata),
    }
    return act.CallWebhook(
        name=hook.name, type=hook.type.value, url=hook.url, timeout_seconds=float(hook.timeout_seconds),
        gate=gate, entry=entry, payload=payload,
    )


def record(status: WebhooksStatus | None, calls: Sequence[tuple[str, WebhookCall]]) -> WebhooksStatus | None:
    """``status`` after ``calls`` (each with the entry it answers for): the newest calls, and the answers."""
    if not calls:
        return status
    base = status or WebhooksStatus()
    passed, failed = list(base.passed), list(base.failed)
    for entry, call in calls:
        if not entry:
            continue  # an Event or a Rollout look: nothing waits for its answer
        passed = [e for e in passed if e != entry]
        failed = [e for e in failed if e != entry]
        (passed if call.ok else failed).append(entry)
    return WebhooksStatus(
        calls=[*base.calls, *(call for _entry, call in calls)][-CALLS_KEPT:],
        passed=_last(passed),
        failed=_last(failed),
    )


def _last(entries: Iterable[str]) -> list[str]:
    return list(entries)[-KEYS_KEPT:]


def call_events(calls: Sequence[tuple[str, WebhookCall]]) -> list[act.Event]:
    """An Event per call: Normal when it answered 2xx, Warning when it failed.

    A Rollback hook that does not answer 2xx says "no rollback": that is no warning.
    """
    events = []
    for _entry, call in calls:
        message = f"webhook {call.name} ({call.type.value}, {call.gate}) {call.result}"
        if call.ok:
            events.append(act.Event(type="Normal", reason="WebhookCalled", message=message))
        elif call.type is not HookType.ROLLBACK or call.code is None:
            events.append(act.Event(type="Warning", reason="WebhookFailed", message=message))
    return events


def failed_look(calls: Sequence[tuple[str, WebhookCall]]) -> str:
    """Why the Rollout hooks fail an analysis look ("" if they all answered 2xx)."""
    failed = [call for _entry, call in calls if not call.ok]
    return "; ".join(f"Rollout webhook {c.name} {c.result}" for c in failed)
