"""kopf wiring only: each handler hands the body to the reconciler and reports what came back.

Handlers register on import; ``cli.run`` imports this module and starts kopf. The reconciler
and settings arrive through kopf's ``memo`` (one per operator process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import json
import logging
from typing import Any

import kopf
import structlog

from istio_canary import actions as act
from istio_canary import errors, workloads
from istio_canary import metrics as opmetrics
from istio_canary.k8s import cache
from istio_canary.models import CanaryReleaseSpec
from istio_canary.models.marks import GROUP, ISTIO_GROUP, ISTIO_VERSION, PLURAL, VERSION
from istio_canary.phases import Observed
from istio_canary.reconcile import Outcome, Reconciler

log = structlog.get_logger("istio_canary")

RESOURCE = (GROUP, VERSION, PLURAL)
TICK_SECONDS = 1.0
WRITE_THREADS = 32
# A spec that keeps failing is retried by the timer with back-off; kopf only hears of the rest.
UNEXPECTED_RETRY_SECONDS = 60


class HashDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's "last handled" state as a hash, not as a copy of the whole spec.

    A full copy in an annotation doubles the object and, for a large spec, breaks the 256 KiB
    annotation limit: every patch then fails and the finalizer can never be removed. The
    reconcile is level-triggered and never reads kopf's diff, so knowing *whether* the spec
    changed is enough: an unchanged hash gives kopf the current essence (no diff), a changed
    one gives it an empty one (some diff).
    """

    def fetch(self, *, body: kopf.Body) -> Any:
        stored = None
        for key in self.make_keys(self.key, body=body):
            stored = body.metadata.annotations.get(key) or stored
        if stored is None:
            return None
        current = self.build(body=body)
        return current if stored.strip() == _essence_hash(current) else {}

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        for key in self.make_keys(self.key, body=body):
            patch.metadata.annotations[key] = _essence_hash(essence)
        self._store_marker(prefix=self.prefix, patch=patch, body=body)


def _essence_hash(essence: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(essence, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # API writes run in threads (the kubernetes client is synchronous); asyncio's default pool
    # of cpu+4 threads queued a wave of 100 weight changes behind 6 writers.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="k8s-write")
    )
    # Keep kopf's bookkeeping under our own API group, not kopf.zalando.org.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = HashDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")
    settings.posting.level = logging.WARNING  # Events come from our decisions, not kopf's logs.
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    # kopf gives each object a shallow copy of this memo: a dict made here is shared by all of them.
    memo.caches = {}
    memo.scheduler = asyncio.create_task(_schedule(memo), name="istio-canary scheduler")


@kopf.on.cleanup()
async def stop_scheduler(memo: kopf.Memo, **_: Any) -> None:
    scheduler = memo.get("scheduler")
    if scheduler is not None:
        scheduler.cancel()


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf connects with the same credentials as our client (kubeconfig and context, or in-cluster)."""
    cfg = memo.reconciler.cluster.api.configuration
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization") or ""
    scheme, _sep, token = str(header).partition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


def _emitter(body: kopf.Body) -> Any:
    def emit(event: act.Event) -> None:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)

    return emit


# Watch caches of what releases depend on: a reconcile reads these, not the API server.
@kopf.index("", "v1", "services")
def services_by_name(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, name): cache.slim(body)}


@kopf.index("apps", "v1", "deployments")
def deployments_by_namespace(*, namespace: str | None, body: kopf.Body, **_: Any) -> Any:
    return {namespace: cache.slim(body)}


@kopf.index(*RESOURCE)
def releases_by_key(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    """The releases as last seen: the scheduler's looks read them (kopf hands its handlers their own)."""
    return {(namespace, name): cache.slim(body)}


@kopf.index(ISTIO_GROUP, ISTIO_VERSION, "virtualservices")
def virtualservices_by_namespace(*, namespace: str | None, body: kopf.Body, **_: Any) -> Any:
    return {namespace: cache.slim(body)}


@kopf.index(ISTIO_GROUP, ISTIO_VERSION, "destinationrules")
def destinationrules_by_namespace(*, namespace: str | None, body: kopf.Body, **_: Any) -> Any:
    return {namespace: cache.slim(body)}


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers")
def autoscalers_by_namespace(*, namespace: str | None, body: kopf.Body, **_: Any) -> Any:
    return {namespace: cache.slim(body)}


@kopf.index("policy", "v1", "poddisruptionbudgets")
def disruptionbudgets_by_namespace(*, namespace: str | None, body: kopf.Body, **_: Any) -> Any:
    return {namespace: cache.slim(body)}


@kopf.index("", "v1", "namespaces")
def namespace_labels(*, name: str, labels: kopf.Labels, **_: Any) -> Any:
    """Their labels only: sidecar injection is all a release asks of its namespace."""
    return {name: dict(labels)}


@kopf.index("networking.k8s.io", "v1", "ingresses")
def ingresses_by_namespace(*, namespace: str | None, body: kopf.Body, **_: Any) -> Any:
    return {namespace: cache.slim(body)}


@kopf.on.event("apps", "v1", "deployments", labels={workloads.MANAGED_BY_LABEL: workloads.MANAGED_BY})
def on_canary_event(meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    """A canary Deployment changed (became ready, lost pods): its release looks again at once."""
    owner = (meta.get("annotations") or {}).get(workloads.RELEASE_ANNOTATION, "")
    namespace, _sep, name = owner.partition("/")
    if name:
        memo.reconciler.wake(namespace=namespace, name=name)


class UnexpectedReconcileError(Exception):
    """A reconcile failed outside the decision (already reported as an Event): retried later."""


# The watch caches a reconcile reads, by index handler name.
INDICES = (
    "services_by_name", "deployments_by_namespace", "virtualservices_by_namespace", "destinationrules_by_namespace",
    "autoscalers_by_namespace", "disruptionbudgets_by_namespace", "namespace_labels", "ingresses_by_namespace",
    "releases_by_key",
)


def _observer(indices: dict[str, Any]) -> Any:
    def cached(namespace: str, release: str, spec: CanaryReleaseSpec) -> Observed:
        return cache.observe_cached(
            namespace=namespace,
            service=spec.service,
            release=release,
            listed=[(ref.namespace or namespace, ref.name) for ref in spec.routing.virtual_services],
            versions=(spec.stable.version, spec.canary.version),
            services=indices["services_by_name"],
            deployments=indices["deployments_by_namespace"],
            virtual_services=indices["virtualservices_by_namespace"],
            destination_rules=indices["destinationrules_by_namespace"],
            autoscalers=indices["autoscalers_by_namespace"],
            disruption_budgets=indices["disruptionbudgets_by_namespace"],
            namespaces=indices["namespace_labels"],
            ingresses=indices["ingresses_by_namespace"],
        )

    return cached


async def _reconcile(
    reconciler: Reconciler, body: Any, indices: dict[str, Any], *, emit: Any, deleting: bool, handler: str
) -> Outcome:
    """One reconcile on the watch caches; an error outside the decision is reported and raised."""
    with opmetrics.DEFAULT.reconcile_timer(handler):
        try:
            # Errors of the release itself come back as a decision with a back-off (reconcile.py);
            # only a conflict, or a bug outside the decision, reaches here.
            return await reconciler.reconcile(body=body, emit=emit, deleting=deleting, observe=_observer(indices))
        except errors.ConflictError:
            raise
        except Exception as err:  # reported once, retried later, never a crash loop
            classified = errors.classify(err)
            emit(act.Event(type="Warning", reason=classified.reason, message=classified.message))
            raise UnexpectedReconcileError(f"{classified.message} (retrying in {UNEXPECTED_RETRY_SECONDS} s)") from err


async def _run(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, kwargs: dict[str, Any], *, deleting: bool, handler: str
) -> Outcome:
    indices = {name: kwargs[name] for name in INDICES}
    if not memo.caches:
        memo.caches.update(indices)  # live views: the scheduler's looks read the same caches
    try:
        emit = _emitter(body)
        outcome = await _reconcile(memo.reconciler, body, indices, emit=emit, deleting=deleting, handler=handler)
    except errors.ConflictError as err:
        raise kopf.TemporaryError(str(err), delay=0.5) from err
    except UnexpectedReconcileError as err:
        patch.status["message"] = str(err)
        raise kopf.TemporaryError(str(err), delay=UNEXPECTED_RETRY_SECONDS) from err
    if outcome.status_patch:
        patch.status.update(outcome.status_patch)
    return outcome


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
async def on_change(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    await _run(body, patch, memo, kwargs, deleting=False, handler="change")


async def _schedule(memo: kopf.Memo) -> None:
    """The operator's one scheduler: each release is looked at when it is due (see due.py)."""
    reconciler: Reconciler = memo.reconciler
    looking: set[asyncio.Task[None]] = set()
    while True:
        await reconciler.due.wait(at_most=TICK_SECONDS)
        indices = memo.caches
        if not indices:
            continue  # no handler has run yet, so the caches are not known yet
        for key in reconciler.due.take():
            task = asyncio.create_task(_look(reconciler, indices, key))
            looking.add(task)
            task.add_done_callback(looking.discard)


async def _look(reconciler: Reconciler, indices: dict[str, Any], key: str) -> None:
    """One scheduled look at a release: reconcile, then write its status (kopf writes the handlers')."""
    namespace, _sep, name = key.partition("/")
    body = next(iter(indices["releases_by_key"].get((namespace, name), ())), None)
    if body is None or body["metadata"].get("deletionTimestamp"):
        reconciler.due.retry(key, seconds=reconciler.settings.resync_seconds)  # kopf's delete handler has it
        return
    loop, cluster = asyncio.get_running_loop(), reconciler.cluster

    def emit(event: act.Event) -> None:
        loop.run_in_executor(None, functools.partial(cluster.post_event, release=body, event=event))

    try:
        outcome = await _reconcile(reconciler, body, indices, emit=emit, deleting=False, handler="timer")
        if outcome.status_patch:
            write = functools.partial(cluster.patch_status, namespace=namespace, name=name, patch=outcome.status_patch)
            await loop.run_in_executor(None, write)
    except errors.ConflictError:
        reconciler.due.retry(key, seconds=0.5)
    except (UnexpectedReconcileError, errors.ReleaseError) as err:
        log.warning("scheduled look failed", namespace=namespace, name=name, error=str(err))
        reconciler.due.retry(key, seconds=UNEXPECTED_RETRY_SECONDS)


@kopf.on.delete(*RESOURCE)
async def on_delete(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, meta: kopf.Meta, **kwargs: Any) -> None:
    outcome = await _run(body, patch, memo, kwargs, deleting=True, handler="delete")
    if outcome.spec_invalid:
        return  # a spec that never parsed never changed anything: nothing to undo
    if not outcome.decision.done:
        raise kopf.TemporaryError(outcome.decision.message, delay=outcome.decision.requeue_after or 1)
    memo.reconciler.forget(namespace=meta["namespace"], name=meta["name"])
