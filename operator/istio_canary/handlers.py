"""kopf wiring only: each handler hands the body to the reconciler and reports what came back.

Handlers register on import; ``cli.run`` imports this module and starts kopf. The reconciler
and settings arrive through kopf's ``memo`` (one per operator process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
from typing import Any

import kopf

from istio_canary import actions as act
from istio_canary import errors, workloads
from istio_canary import metrics as opmetrics
from istio_canary.k8s import cache
from istio_canary.models import CanaryReleaseSpec
from istio_canary.models.marks import GROUP, ISTIO_GROUP, ISTIO_VERSION, PLURAL, VERSION
from istio_canary.phases import Observed
from istio_canary.reconcile import Outcome, Reconciler

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
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
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


async def _run(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, kwargs: dict[str, Any], *, deleting: bool, handler: str
) -> Outcome:
    reconciler: Reconciler = memo.reconciler

    def cached(namespace: str, release: str, spec: CanaryReleaseSpec) -> Observed:
        return cache.observe_cached(
            namespace=namespace,
            service=spec.service,
            release=release,
            listed=[(ref.namespace or namespace, ref.name) for ref in spec.routing.virtual_services],
            versions=(spec.stable.version, spec.canary.version),
            services=kwargs["services_by_name"],
            deployments=kwargs["deployments_by_namespace"],
            virtual_services=kwargs["virtualservices_by_namespace"],
            destination_rules=kwargs["destinationrules_by_namespace"],
            autoscalers=kwargs["autoscalers_by_namespace"],
            disruption_budgets=kwargs["disruptionbudgets_by_namespace"],
            namespaces=kwargs["namespace_labels"],
            ingresses=kwargs["ingresses_by_namespace"],
        )

    with opmetrics.DEFAULT.reconcile_timer(handler):
        try:
            # Errors of the release itself come back as a decision with a back-off (reconcile.py);
            # only a conflict, or a bug outside the decision, reaches here.
            outcome = await reconciler.reconcile(body=body, emit=_emitter(body), deleting=deleting, observe=cached)
        except errors.ConflictError as err:
            raise kopf.TemporaryError(str(err), delay=0.5) from err
        except Exception as err:  # reported once, retried later, never a crash loop
            classified = errors.classify(err)
            kopf.event(body, type="Warning", reason=classified.reason, message=classified.message)
            patch.status["message"] = f"{classified.message} (retrying in {UNEXPECTED_RETRY_SECONDS} s)"
            raise kopf.TemporaryError(classified.message, delay=UNEXPECTED_RETRY_SECONDS) from err
    if outcome.status_patch:
        patch.status.update(outcome.status_patch)
    return outcome


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
async def on_change(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    await _run(body, patch, memo, kwargs, deleting=False, handler="change")


@kopf.timer(*RESOURCE, interval=TICK_SECONDS)
async def on_tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, meta: kopf.Meta, **kwargs: Any) -> None:
    reconciler: Reconciler = memo.reconciler
    if meta.get("deletionTimestamp") or not reconciler.is_due(namespace=meta["namespace"], name=meta["name"]):
        return
    # Errors are already reported; the next tick tries again.
    with contextlib.suppress(kopf.TemporaryError, kopf.PermanentError):
        await _run(body, patch, memo, kwargs, deleting=False, handler="timer")


@kopf.on.delete(*RESOURCE)
async def on_delete(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, meta: kopf.Meta, **kwargs: Any) -> None:
    outcome = await _run(body, patch, memo, kwargs, deleting=True, handler="delete")
    if outcome.spec_invalid:
        return  # a spec that never parsed never changed anything: nothing to undo
    if not outcome.decision.done:
        raise kopf.TemporaryError(outcome.decision.message, delay=outcome.decision.requeue_after or 1)
    memo.reconciler.forget(namespace=meta["namespace"], name=meta["name"])
