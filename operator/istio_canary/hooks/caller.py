"""The HTTP call of a webhook, under the operator's outbound policy: the I/O half of ``hooks``.

Every call goes through ``analysis.egress.GuardedSession``: the URL must lie under an allowed
webhook prefix, every address the host resolves to is checked, the operator connects to the
address it checked, the whole attempt (answer included) ends within the hook's timeout, and at
most ``MAX_ANSWER_BYTES`` are read. Redirects are not followed. A failed attempt is tried once
more after a short pause; the result is a :class:`WebhookCall` in fixed words: the status code
at most, never what the receiver wrote, never the URL (its query may hold a token).

It blocks: the reconciler runs it in a worker thread, as it runs the analysis' looks, and the
calls of one decision run side by side (at most ``MAX_WEBHOOKS`` threads).
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from istio_canary import actions as act
from istio_canary import errors
from istio_canary.analysis.egress import Egress, GuardedSession, HttpStatusError, describe_failure
from istio_canary.hooks import plan
from istio_canary.models import CanaryReleaseSpec, CanaryReleaseStatus
from istio_canary.models.hooks import HookType, WebhookCall

__all__ = ["ATTEMPTS", "RecentCalls", "call", "call_all", "log_calls", "rollout_look"]

ATTEMPTS = 2
PAUSE_SECONDS = 0.5
USER_AGENT = "istio-canary-operator-webhook"

Clock = Callable[[], datetime]


def call(action: act.CallWebhook, *, egress: Egress, clock: Clock = lambda: datetime.now(UTC)) -> WebhookCall:
    """POST the action's payload; a failed attempt is tried once more. Never raises."""
    try:
        egress.policy.check_webhook_url(action.url, name=action.name)
    except errors.OutboundRefusedError:
        return _result(action, clock, ok=False, code=None, text="was not called: the outbound policy refuses its url")
    code: int | None = None
    text = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(PAUSE_SECONDS)
        code, text = _attempt(action, egress=egress)
        if code is not None and 200 <= code < 300:
            return _result(action, clock, ok=True, code=code, text=text)
    return _result(action, clock, ok=False, code=code, text=text)


def _attempt(action: act.CallWebhook, *, egress: Egress) -> tuple[int | None, str]:
    """(status code or None, fixed words) of one attempt."""
    session = GuardedSession(egress=egress, timeout_seconds=action.timeout_seconds)
    try:
        response = session.post(
            action.url,
            json=action.payload,
            timeout=action.timeout_seconds,
            allow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
    except HttpStatusError as err:
        return err.status_code, f"answered HTTP {err.status_code}"
    except Exception as err:  # noqa: BLE001 - every failure is a result in fixed words, never the remote's
        return None, describe_failure(err, timeout_seconds=action.timeout_seconds).replace(
            "not a Prometheus query result", "not an HTTP answer"
        )
    finally:
        session.close()
    if not 200 <= response.status_code < 300:
        return response.status_code, f"answered HTTP {response.status_code} (redirects are not followed)"
    return response.status_code, f"answered HTTP {response.status_code}"


def _result(action: act.CallWebhook, clock: Clock, *, ok: bool, code: int | None, text: str) -> WebhookCall:
    return WebhookCall(
        name=action.name, type=HookType(action.type), time=clock().isoformat(), ok=ok, code=code,
        result=text, gate=action.gate,
    )


def call_all(actions: Sequence[act.CallWebhook], *, egress: Egress) -> list[tuple[str, WebhookCall]]:
    """Every call, at the same time, with the entry its answer is recorded under (in order).

    At the same time: a release with several hooks waits for the slowest one, not for their sum.
    """
    if len(actions) <= 1:
        return [(action.entry, call(action, egress=egress)) for action in actions]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(actions), thread_name_prefix="webhook") as pool:
        results = list(pool.map(lambda action: call(action, egress=egress), actions))
    return [(action.entry, result) for action, result in zip(actions, results, strict=True)]


def rollout_look(
    *, spec: CanaryReleaseSpec, namespace: str, name: str, previous: CanaryReleaseStatus, egress: Egress
) -> list[tuple[str, WebhookCall]]:
    """The Rollout hooks' calls at an analysis look (their failure fails the look)."""
    revision = previous.canary_revision or ""
    actions = [
        plan.build_call(
            hook, gate="rollout", entry="", namespace=namespace, name=name, spec=spec, phase=previous.phase,
            traffic=previous.traffic, revision=revision,
        )
        for hook in plan.hooks_of(spec, HookType.ROLLOUT)
    ]
    return call_all(actions, egress=egress)


class RecentCalls:
    """When each call was last made in this process: a look at a status the watch has not brought
    yet (the answer of a call just made is not in it) must not make the same call again."""

    def __init__(self) -> None:
        self._made: dict[str, float] = {}

    def not_just_made(self, calls: Sequence[act.CallWebhook]) -> list[act.CallWebhook]:
        """The calls not made moments ago (a one-time call: not in the last half minute)."""
        now, due = time.monotonic(), []
        for action in calls:
            key = f"{action.name}/{action.gate}/{action.entry}/{action.payload.get('phase')}"
            window = 30.0 if action.gate in ("pre-rollout", "post-rollout", "event") else 1.5
            if now - self._made.get(key, -math.inf) >= window:
                self._made[key] = now
                due.append(action)
        return due


def log_calls(bound: Any, calls: Sequence[tuple[str, WebhookCall]]) -> None:
    """One log line per call: the hook's name and result, never its URL."""
    for _entry, made in calls:
        bound.info("webhook called", webhook=made.name, type=made.type.value, ok=made.ok, result=made.result)
