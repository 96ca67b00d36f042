"""One reconcile: read the cluster, decide, write, report. kopf handlers call into this.

The order is always the same: observe (reads only), ``phases.decide`` (pure), carry out its
actions in order, then patch the status only when it changed. Releases are reconciled under a
per-release lock, so the change handler and the timer never interleave their writes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic
import structlog

from istio_canary import actions as act
from istio_canary import errors, phases
from istio_canary import metrics as opmetrics
from istio_canary.analysis.egress import Egress
from istio_canary.k8s import secrets
from istio_canary.k8s.cluster import Cluster
from istio_canary.models import (
    CanaryReleaseSpec,
    CanaryReleaseStatus,
    ConditionType,
    Phase,
    VersionMetrics,
)
from istio_canary.models.analysis import CheckResult
from istio_canary.status import build_status, set_condition

__all__ = ["Outcome", "Reconciler", "Settings"]

log = structlog.get_logger("istio_canary")

# How long a settled release waits before it is checked again for drift.
RESYNC_SECONDS = 30.0
# Retries after an error: 5 s, 10 s, 20 s ... at most 5 minutes apart.
BACKOFF_FIRST_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0

EventSink = Callable[[act.Event], None]


@dataclass(frozen=True, kw_only=True)
class Settings:
    metrics_interval_seconds: float = 10.0
    metrics_window_seconds: int = 60
    resync_seconds: float = RESYNC_SECONDS
    drain_seconds: int = phases.DEFAULT_DRAIN_SECONDS
    crash_after_writes: int | None = None
    """Fault injection for restart-safety tests: the process exits at once after this many writes."""
    egress: Egress = field(default_factory=Egress)
    """The outbound policy for URLs that releases name (outbound.py), and its resolver."""

    @classmethod
    def from_env(cls, **kwargs: Any) -> Settings:
        crash = os.environ.get("ISTIO_CANARY_CRASH_AFTER_WRITES")
        return cls(crash_after_writes=int(crash) if crash else None, **kwargs)


@dataclass(frozen=True, kw_only=True)
class Outcome:
    decision: phases.Decision
    status: CanaryReleaseStatus
    status_patch: dict[str, Any] | None
    writes: int
    spec_invalid: bool = False
    """The spec itself did not parse: the release never changed anything."""


@dataclass(frozen=True, kw_only=True)
class _Health:
    """One refresh of per-version metrics; ``available`` None: not looked at this time."""

    metrics: dict[str, VersionMetrics] | None = None
    stale: bool = False
    available: bool | None = None
    reason: str = ""
    message: str = ""


@dataclass
class _Memory:
    """What one operator process remembers about a release between reconciles (never needed for correctness)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    due: float = 0.0
    metrics_due: float = 0.0
    failures: int = 0
    """Reconciles in a row that ended in an error: the back-off grows with it."""


class Reconciler:
    def __init__(self, *, cluster: Cluster, settings: Settings, prometheus: Any | None = None) -> None:
        self.cluster = cluster
        self.settings = settings
        self.prometheus = prometheus
        self._memory: dict[str, _Memory] = {}
        self._writes = 0

    def _mem(self, key: str) -> _Memory:
        return self._memory.setdefault(key, _Memory())

    def forget(self, *, namespace: str, name: str) -> None:
        self._memory.pop(f"{namespace}/{name}", None)
        opmetrics.DEFAULT.forget_release(namespace=namespace, name=name)

    def wake(self, *, namespace: str, name: str) -> None:
        """Something the release depends on changed (its canary became ready, say): look again now."""
        mem = self._memory.get(f"{namespace}/{name}")
        if mem is not None:
            mem.due = 0.0

    def is_due(self, *, namespace: str, name: str) -> bool:
        return time.monotonic() >= self._mem(f"{namespace}/{name}").due

    async def reconcile(
        self,
        *,
        body: Mapping[str, Any],
        emit: EventSink,
        deleting: bool = False,
        cached: Callable[[str, str], phases.Observed] | None = None,
    ) -> Outcome:
        """One reconcile; ``cached(namespace, service)`` reads the watch caches instead of the API."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        mem = self._mem(f"{namespace}/{name}")
        bound = log.bind(namespace=namespace, name=name)
        async with mem.lock:
            previous = _previous_status(body)
            try:
                spec = CanaryReleaseSpec.model_validate(body.get("spec") or {})
            except pydantic.ValidationError as err:
                return self._invalid_spec(mem, body=body, previous=previous, error=err, emit=emit)
            if cached is not None:
                observed = cached(namespace, spec.service)
            else:
                observed = await asyncio.to_thread(self.cluster.observe, namespace=namespace, service=spec.service)
            now = datetime.now(UTC)
            release = phases.ReleaseRef(
                namespace=namespace,
                name=name,
                uid=meta.get("uid", ""),
                generation=int(meta.get("generation", 0)),
                deleting=deleting,
            )
            health = await self._health(mem, spec=spec, namespace=namespace, previous=previous)
            deployments = {d["metadata"]["name"]: d for d in observed.deployments}
            vs = observed.virtual_service
            writes = 0
            check = None
            try:
                if not deleting:
                    # A URL the outbound policy refuses fails the release before it changes anything;
                    # a release being deleted needs no metrics, and its clean-up must not wait for them.
                    self._check_outbound(spec)
                    check = await self._analysis_check(spec=spec, namespace=namespace, previous=previous, now=now)
                decision = phases.decide(
                    release=release, spec=spec, observed=observed, previous=previous, now=now, check=check,
                    drain_seconds=self.settings.drain_seconds,
                )
                if check is not None:
                    opmetrics.count_verdict(check.verdict)
                if decision.reason == "AnalysisFailed" and previous.phase is not Phase.ABORTED:
                    opmetrics.DEFAULT.count_rollback()
                for action in decision.actions:
                    done = await asyncio.to_thread(
                        self.cluster.execute, action, observed=observed, namespace=namespace, release_name=name
                    )
                    if done.wrote:
                        writes += 1
                        self._count_write()
                    if isinstance(action, (act.ApplyDeployment, act.PatchObject)) and done.stored is not None:
                        if done.stored.get("kind", "Deployment") == "Deployment":
                            deployments[done.stored["metadata"]["name"]] = done.stored
                    elif isinstance(action, act.DeleteObject):
                        deployments.pop(action.name, None)
                    if getattr(action, "kind", "") == "VirtualService" and not isinstance(action, act.PatchObject):
                        vs = done.stored
                mem.failures = 0
            except errors.ConflictError:
                raise  # decided again at once from fresh state by the caller
            except Exception as err:  # noqa: BLE001 - every failure ends in status, never in a crash loop
                decision = self._failure(mem, previous=previous, error=err, bound=bound)
            for event in decision.events:
                emit(event)
            status = build_status(
                spec=spec,
                previous=previous,
                decision=decision,
                deployments=list(deployments.values()),
                virtual_service=vs,
                metrics=health.metrics,
                metrics_stale=health.stale,
                generation=release.generation,
                now=now,
            )
            if health.available is not None:
                status = status.model_copy(update={"conditions": set_condition(
                    status.conditions, type_=ConditionType.METRICS_AVAILABLE.value, status=health.available,
                    reason=health.reason, message=health.message, now=now, generation=release.generation,
                )})
            status_patch = _status_patch(previous=body.get("status") or {}, status=status)
            if decision.phase is not previous.phase or previous.observed_generation != release.generation:
                bound.info(
                    "release reconciled",
                    phase=decision.phase.value,
                    previous_phase=previous.phase.value,
                    reason=decision.reason,
                    message=decision.message,
                )
            opmetrics.DEFAULT.observe_status(namespace=namespace, name=name, status=status)
            mem.due = time.monotonic() + (
                decision.requeue_after if decision.requeue_after is not None else self.settings.resync_seconds
            )
            if spec.analysis is not None and decision.phase is Phase.PROGRESSING:
                mem.due = min(mem.due, time.monotonic() + spec.analysis.interval_seconds)
            if self.prometheus is not None and not decision.phase.is_final:
                mem.due = min(mem.due, mem.metrics_due)  # refresh status.versions[].metrics on time
            return Outcome(decision=decision, status=status, status_patch=status_patch, writes=writes)

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
        invalid = errors.InvalidSpecError(f"invalid spec: {_first_error(error)}")
        decision = self._failure(mem, previous=previous, error=invalid, bound=log.bind(
            namespace=meta["namespace"], name=meta["name"]
        ))
        for event in decision.events:
            emit(event)
        generation = int(meta.get("generation", 0))
        now = datetime.now(UTC)
        status = previous.model_copy(update={
            "phase": decision.phase,
            "message": decision.message,
            "observed_generation": generation,
            "conditions": set_condition(
                previous.conditions, type_=ConditionType.SPEC_VALID.value, status=False,
                reason=decision.reason, message=decision.message, now=now, generation=generation,
            ),
        })
        mem.due = time.monotonic() + (decision.requeue_after or RESYNC_SECONDS)
        status_patch = _status_patch(previous=body.get("status") or {}, status=status)
        return Outcome(decision=decision, status=status, status_patch=status_patch, writes=0, spec_invalid=True)

    def _count_write(self) -> None:
        self._writes += 1
        if self.settings.crash_after_writes is not None and self._writes >= self.settings.crash_after_writes:
            os._exit(137)  # like SIGKILL: no cleanup, no finalizer, no status write

    async def _health(
        self, mem: _Memory, *, spec: CanaryReleaseSpec, namespace: str, previous: CanaryReleaseStatus
    ) -> _Health:
        """Per-version traffic health from Prometheus, refreshed every metrics interval.

        A version Prometheus has no traffic for keeps its last good values, marked stale, and
        the MetricsAvailable condition says which version is silent; so does a Prometheus that
        does not answer. Neither is an error of the reconcile.
        """
        if self.prometheus is None or previous.phase in (Phase.COMPLETED, Phase.ABORTED):
            return _Health()
        if time.monotonic() < mem.metrics_due:
            return _Health()
        mem.metrics_due = time.monotonic() + self.settings.metrics_interval_seconds
        url = getattr(self.prometheus, "url", "?")
        window = self.settings.metrics_window_seconds
        try:
            health: dict[str, VersionMetrics] = await asyncio.to_thread(
                self.prometheus.version_health, namespace=namespace, service=spec.service, window_seconds=window
            )
        except Exception as err:  # noqa: BLE001 - any failure means "metrics unavailable", never a crash
            # Our own errors carry fixed words; any other error's text might quote Prometheus.
            known = isinstance(err, (errors.MetricsUnavailableError, errors.OutboundRefusedError))
            detail = str(err) if known else f"unexpected {type(err).__name__}"
            log.warning("metrics unavailable", namespace=namespace, service=spec.service, error=detail)
            return _Health(
                stale=True, available=False, reason="PrometheusUnreachable",
                message=f"Prometheus at {url} unreachable, showing the last values (stale): {detail}",
            )
        silent = []
        for version in (spec.stable.version, spec.canary.version):
            if not (health.get(version) or VersionMetrics()).request_rate:
                silent.append(version)
                health.pop(version, None)
                last = next((v.metrics for v in previous.versions if v.version == version and v.metrics), None)
                if last is not None:
                    health[version] = last.model_copy(update={"stale": True})
        if silent:
            return _Health(
                metrics=health, available=False, reason="NoTraffic",
                message=f"no traffic to {' and '.join(silent)} in the last {window} s (Prometheus at {url})",
            )
        return _Health(
            metrics=health, available=True, reason="MetricsFound",
            message=f"Prometheus at {url} has traffic for both versions over the last {window} s",
        )

    def _check_outbound(self, spec: CanaryReleaseSpec) -> None:
        """Raise ``OutboundRefusedError`` when the release names a URL the policy refuses (no I/O)."""
        if spec.analysis is not None and spec.analysis.prometheus_url:
            self.settings.egress.policy.check_release_prometheus_url(spec.analysis.prometheus_url)

    async def _analysis_check(
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


def _first_error(err: pydantic.ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))


def _previous_status(body: Mapping[str, Any]) -> CanaryReleaseStatus:
    raw = body.get("status") or {}
    raw = {k: v for k, v in raw.items() if k in _STATUS_KEYS}
    try:
        return CanaryReleaseStatus.model_validate(raw)
    except pydantic.ValidationError:
        # A status written by an older operator version: start from scratch rather than crash.
        return CanaryReleaseStatus()


_STATUS_KEYS = {f.alias or n for n, f in CanaryReleaseStatus.model_fields.items()}


def _status_patch(*, previous: Mapping[str, Any], status: CanaryReleaseStatus) -> dict[str, Any] | None:
    """The status fields that differ from the stored ones (None: nothing to write)."""
    wire = status.to_wire()
    changed = {k: v for k, v in wire.items() if previous.get(k) != v}
    for k in previous:
        if k in _STATUS_KEYS and k not in wire:
            changed[k] = None
    return changed or None
