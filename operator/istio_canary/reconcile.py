"""One reconcile: gather, decide, apply, report. kopf handlers call into this.

The order is always the same: gather what the watch caches hold and what Prometheus says
(reads only), ``phases.decide`` (pure), carry out its actions in order, then build the status
(pure) and patch it only when it changed. Releases are reconciled under a per-release lock, so
the change handler and the scheduler never interleave their writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic
import structlog

from istio_canary import actions as act
from istio_canary import errors, health, phases
from istio_canary import metrics as opmetrics
from istio_canary import status as status_
from istio_canary.analysis.source import MetricsSource
from istio_canary.due import DueTable
from istio_canary.hooks import caller as hooks_caller
from istio_canary.hooks import plan as hooks_plan
from istio_canary.k8s import secrets
from istio_canary.k8s.applied import Applied, record_write
from istio_canary.models import (
    CanaryReleaseSpec,
    CanaryReleaseStatus,
    ConditionType,
    Phase,
    Verdict,
)
from istio_canary.models.analysis import CheckResult
from istio_canary.notifications.notice import QUIET_REASONS, Told, notice_for
from istio_canary.notifications.sender import Notifier
from istio_canary.phases.schedule import next_look_in
from istio_canary.reconciling import (
    RESYNC_SECONDS,
    ClusterWriter,
    Outcome,
    Settings,
    first_problem,
)
from istio_canary.status import build_status, set_condition

__all__ = ["RESYNC_SECONDS", "ClusterWriter", "Outcome", "Reconciler", "Settings"]

log = structlog.get_logger("istio_canary")

# Retries after an error: 5 s, 10 s, 20 s ... at most 5 minutes apart.
BACKOFF_FIRST_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0

EventSink = Callable[[act.Event], None]
Observe = Callable[[str, str, CanaryReleaseSpec], phases.Observed]
"""``observe(namespace, release name, spec)``: what the watch caches hold for the release."""


@dataclass(frozen=True, kw_only=True)
class _Gathered:
    """Everything one decision reads."""

    release: phases.ReleaseRef
    spec: CanaryReleaseSpec
    previous: CanaryReleaseStatus
    observed: phases.Observed
    health: health.Health
    now: datetime


@dataclass
class _Memory:
    """What one operator process remembers about a release between reconciles (never needed for correctness)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    metrics_due: float = 0.0
    failures: int = 0
    """Reconciles in a row that ended in an error: the back-off grows with it."""
    recent_calls: hooks_caller.RecentCalls = field(default_factory=hooks_caller.RecentCalls)
    told: Told = field(default_factory=Told)
    """What the release's notification receivers last heard."""


class Reconciler:
    def __init__(
        self,
        *,
        cluster: ClusterWriter,
        settings: Settings,
        prometheus: MetricsSource | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.prometheus = prometheus
        self.notifier = notifier
        self._memory: dict[str, _Memory] = {}
        self.due = DueTable()
        """When each release is looked at next (the operator's scheduler reads it)."""

    def _mem(self, key: str) -> _Memory:
        return self._memory.setdefault(key, _Memory())

    def forget(self, *, namespace: str, name: str) -> None:
        self._memory.pop(f"{namespace}/{name}", None)
        self.due.forget(f"{namespace}/{name}")
        opmetrics.DEFAULT.forget_release(namespace=namespace, name=name)

    def wake(self, *, namespace: str, name: str) -> None:
        """Something the release depends on changed (its canary became ready, say): look again now."""
        self.due.wake(f"{namespace}/{name}")

    async def reconcile(
        self,
        *,
        body: Mapping[str, Any],
        emit: EventSink,
        observe: Observe,
        deleting: bool = False,
    ) -> Outcome:
        """One reconcile; ``observe`` reads the watch caches."""
        meta = body["metadata"]
        mem = self._mem(f"{meta['namespace']}/{meta['name']}")
        async with mem.lock:
            previous = status_.previous_status(body)
            try:
                spec = CanaryReleaseSpec.model_validate(body.get("spec") or {})
            except pydantic.ValidationError as err:
                return self._invalid_spec(mem, body=body, previous=previous, error=err, emit=emit)
            gathered = await self._gather(
                mem, body=body, spec=spec, previous=previous, observe=observe, deleting=deleting
            )
            applied = Applied(
                deployments={d["metadata"]["name"]: d for d in gathered.observed.deployments},
                virtual_service=gathered.observed.virtual_service,
                edges={(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
                       for o in gathered.observed.edge_virtual_services},
            )
            decision = await self._decide_and_apply(mem, gathered, applied)
            for event in (*decision.events, *hooks_plan.call_events(applied.calls)):
                emit(event)
                self._notify(mem, gathered, decision, event)
            return self._report(mem, body=body, gathered=gathered, decision=decision, applied=applied)

    def _notify(self, mem: _Memory, gathered: _Gathered, decision: phases.Decision, event: act.Event) -> None:
        """Tell the receivers the release selects (spec.notifications) what the Event says, once."""
        if self.notifier is None or event.reason in QUIET_REASONS:
            return
        plan = decision.plan
        notice = notice_for(
            namespace=gathered.release.namespace, name=gathered.release.name, spec=gathered.spec,
            phase=decision.phase.value, weights=(plan.stable_weight, plan.canary_weight) if plan else None,
            event=(event.type, event.reason, event.message), time=gathered.now.isoformat(timespec="seconds"),
        )
        if mem.told.is_news(notice, now=time.monotonic()):
            self.notifier.notify(notice, gathered.spec.notifications)

    async def _gather(
        self,
        mem: _Memory,
        *,
        body: Mapping[str, Any],
        spec: CanaryReleaseSpec,
        previous: CanaryReleaseStatus,
        observe: Observe,
        deleting: bool,
    ) -> _Gathered:
        meta = body["metadata"]
        release = phases.ReleaseRef(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation", 0)),
            deleting=deleting,
        )
        looked = await self._health(mem, spec=spec, namespace=release.namespace, previous=previous)
        observed = observe(release.namespace, release.name, spec)
        return _Gathered(
            release=release, spec=spec, previous=previous, observed=observed, health=looked, now=datetime.now(UTC)
        )

    async def _decide_and_apply(self, mem: _Memory, gathered: _Gathered, applied: Applied) -> phases.Decision:
        """Decide, then carry out the actions in order; any error becomes the decision that reports it."""
        release, spec, previous = gathered.release, gathered.spec, gathered.previous
        bound = log.bind(namespace=release.namespace, name=release.name)
        try:
            check = None
            if not release.deleting:
                # A URL the outbound policy refuses fails the release before it changes anything;
                # a release being deleted needs no metrics, and its clean-up must not wait for them.
                self._check_outbound(spec)
                check = await self._analysis_check(gathered, applied)
            decision = phases.decide(
                release=release, spec=spec, observed=gathered.observed, previous=previous, now=gathered.now,
                check=check, drain_seconds=self.settings.drain_seconds,
            )
            if check is not None:
                opmetrics.count_verdict(check.verdict)
            if decision.rolled_back:
                opmetrics.DEFAULT.count_rollback()
            for action in decision.actions:
                done = await asyncio.to_thread(
                    self.cluster.execute, action, observed=gathered.observed, namespace=release.namespace
                )
                record_write(applied, action, done)
            calls = mem.recent_calls.not_just_made(decision.calls)
            if calls:
                applied.calls += await asyncio.to_thread(hooks_caller.call_all, calls, egress=self.settings.egress)
            hooks_caller.log_calls(bound, applied.calls)
            for _entry, made in applied.calls:
                opmetrics.DEFAULT.count_webhook_call(kind=made.type, ok=made.ok)
            mem.failures = 0
            return decision
        except errors.ConflictError:
            raise  # decided again at once from fresh state by the caller
        except Exception as err:  # noqa: BLE001 - every failure ends in status, never in a crash loop
            return self._failure(mem, previous=previous, error=err, bound=bound)

    def _report(
        self,
        mem: _Memory,
        *,
        body: Mapping[str, Any],
        gathered: _Gathered,
        decision: phases.Decision,
        applied: Applied,
    ) -> Outcome:
        release, previous, looked = gathered.release, gathered.previous, gathered.health
        status = build_status(
            spec=gathered.spec,
            previous=previous,
            decision=decision,
            deployments=list(applied.deployments.values()),
            virtual_service=applied.virtual_service,
            edge_virtual_services=list(applied.edges.values()),
            metrics=looked.metrics,
            metrics_stale=looked.stale,
            webhook_calls=applied.calls,
            generation=release.generation,
            now=gathered.now,
        )
        if looked.available is not None:
            status = status.model_copy(update={"conditions": set_condition(
                status.conditions, type_=ConditionType.METRICS_AVAILABLE.value, status=looked.available,
                reason=looked.reason, message=looked.message, now=gathered.now, generation=release.generation,
            )})
        if decision.phase is not previous.phase or previous.observed_generation != release.generation:
            log.bind(namespace=release.namespace, name=release.name).info(
                "release reconciled",
                phase=decision.phase.value,
                previous_phase=previous.phase.value,
                reason=str(getattr(decision.reason, "value", decision.reason)),
                message=decision.message,
            )
        opmetrics.DEFAULT.observe_status(namespace=release.namespace, name=release.name, status=status)
        self.due.set(f"{release.namespace}/{release.name}", seconds=next_look_in(
            decision=decision,
            spec=gathered.spec,
            resync_seconds=self.settings.resync_seconds,
            metrics_in=(mem.metrics_due - time.monotonic()) if self.prometheus is not None else None,
        ))
        status_patch = status_.status_patch(previous=body.get("status") or {}, status=status)
        return Outcome(decision=decision, status=status, status_patch=status_patch, writes=applied.writes)

    def _failure(
        self, mem: _Memory, *, previous: CanaryReleaseStatus, error: Exception, bound: Any
    ) -> phases.Decision:
        """The decision that reports an error, and the back-off before the next try."""
        mem.failures += 1
        delay = min(BACKOFF_FIRST_SECONDS * 2 ** (mem.failures - 1), BACKOFF_MAX_SECONDS)
        classified = errors.classify(error)
        bound.warning(
            "reconcile failed", reason=classified.reason, disposition=classified.disposition.value,
            error=classified.message, retry_in=delay,
        )
        return phases.failed(previous=previous, classified=classified, retry_after=delay)

    def _invalid_spec(
        self,
        mem: _Memory,
        *,
        body: Mapping[str, Any],
        previous: CanaryReleaseStatus,
        error: pydantic.ValidationError,
        emit: EventSink,
    ) -> Outcome:
        """A spec that does not parse (one that slipped past an older CRD): Failed, nothing written."""
        meta = body["metadata"]
        invalid = errors.InvalidSpecError(f"invalid spec: {first_problem(error)}")
        decision = self._failure(mem, previous=previous, error=invalid, bound=log.bind(
            namespace=meta["namespace"], name=meta["name"]
        ))
        for event in decision.events:
            emit(event)
        generation = int(meta.get("generation", 0))
        now = datetime.now(UTC)
        conditions = set_condition(
            previous.conditions, type_=ConditionType.SPEC_VALID.value, status=False,
            reason=str(decision.reason), message=decision.message, now=now, generation=generation,
        )
        status = previous.model_copy(update={
            "phase": decision.phase,
            "message": decision.message,
            "observed_generation": generation,
            "conditions": status_.summary_conditions(
                conditions, decision=decision, previous=previous, analysis_running=False, now=now, generation=generation
            ),
        })
        self.due.set(f"{meta['namespace']}/{meta['name']}", seconds=decision.requeue_after or RESYNC_SECONDS)
        status_patch = status_.status_patch(previous=body.get("status") or {}, status=status)
        return Outcome(decision=decision, status=status, status_patch=status_patch, writes=0, spec_invalid=True)

    async def _health(
        self, mem: _Memory, *, spec: CanaryReleaseSpec, namespace: str, previous: CanaryReleaseStatus
    ) -> health.Health:
        """Per-version traffic health from Prometheus, refreshed every metrics interval."""
        if self.prometheus is None or previous.phase.is_final or time.monotonic() < mem.metrics_due:
            return health.Health()
        mem.metrics_due = time.monotonic() + self.settings.metrics_interval_seconds
        window = self.settings.metrics_window_seconds
        try:
            answer = await asyncio.to_thread(
                self.prometheus.version_health, namespace=namespace, service=spec.service, window_seconds=window,
                aliases=spec.metric_aliases,
            )
        except Exception as err:  # noqa: BLE001 - any failure means "metrics unavailable", never a crash
            # Our own errors carry fixed words; any other error's text might quote Prometheus.
            known = isinstance(err, (errors.MetricsUnavailableError, errors.OutboundRefusedError))
            detail = str(err) if known else f"unexpected {type(err).__name__}"
            log.warning("metrics unavailable", namespace=namespace, service=spec.service, error=detail)
            return health.unreachable(url=self.prometheus.url, detail=detail)
        return health.summarise(
            answer=answer, spec=spec, previous=previous, url=self.prometheus.url, window_seconds=window
        )

    def _check_outbound(self, spec: CanaryReleaseSpec) -> None:
        """Raise ``OutboundRefusedError`` when the release names a URL the policy refuses (no I/O)."""
        if spec.analysis is not None and spec.analysis.prometheus_url:
            self.settings.egress.policy.check_release_prometheus_url(spec.analysis.prometheus_url)
        for hook in spec.webhooks:
            self.settings.egress.policy.check_webhook_url(hook.url, name=hook.name)

    async def _analysis_check(self, gathered: _Gathered, applied: Applied) -> CheckResult | None:
        """A look at the metrics when one is due, failed when a Rollout webhook fails it."""
        release, spec, previous = gathered.release, gathered.spec, gathered.previous
        check = await self._metrics_check(spec=spec, namespace=release.namespace, previous=previous, now=gathered.now)
        if check is None or not spec.webhooks:
            return check
        calls = await asyncio.to_thread(
            hooks_caller.rollout_look, spec=spec, namespace=release.namespace, name=release.name, previous=previous,
            egress=self.settings.egress,
        )
        applied.calls += calls
        failed = hooks_plan.failed_look(calls)
        return check.model_copy(update={"verdict": Verdict.FAIL, "reason": failed}) if failed else check

    async def _metrics_check(
        self, *, spec: CanaryReleaseSpec, namespace: str, previous: CanaryReleaseStatus, now: datetime
    ) -> CheckResult | None:
        from istio_canary.analysis import (
            runner,  # imported late: only releases with analysis need it
        )

        if spec.analysis is None or previous.phase is not Phase.PROGRESSING or previous.analysis is None:
            return None
        return await asyncio.to_thread(
            runner.check,
            prometheus=self.prometheus,
            spec=spec,
            namespace=namespace,
            status=previous.analysis,
            now=now,
            egress=self.settings.egress,
            read_credentials=lambda name: secrets.read_credentials(self.cluster.api, namespace=namespace, name=name),
        )
