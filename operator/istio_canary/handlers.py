"""kopf wiring only: each handler hands the body to the reconciler and reports what came back.

Handlers register on import; ``cli.run`` imports this module and starts kopf. The reconciler
and settings arrive through kopf's ``memo`` (one per operator process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

import kopf
import pydantic

from istio_canary import actions as act
from istio_canary import errors, workloads
from istio_canary import metrics as opmetrics
from istio_canary.k8s import cache
from istio_canary.k8s.cluster import ISTIO_GROUP, ISTIO_VERSION, ConflictError
from istio_canary.models import GROUP, PLURAL, VERSION, Phase
from istio_canary.phases import Observed
from istio_canary.reconcile import Outcome, Reconciler

RESOURCE = (GROUP, VERSION, PLURAL)
TICK_SECONDS = 1.0
WRITE_THREADS = 32


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
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
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

    def cached(namespace: str, service: str) -> Observed:
        return cache.observe_cached(
            namespace=namespace,
            service=service,
            services=kwargs["services_by_name"],
            deployments=kwargs["deployments_by_namespace"],
            virtual_services=kwargs["virtualservices_by_namespace"],
            destination_rules=kwargs["destinationrules_by_namespace"],
        )

    with opmetrics.DEFAULT.reconcile_timer(handler):
        try:
            outcome = await reconciler.reconcile(body=body, emit=_emitter(body), deleting=deleting, cached=cached)
        except pydantic.ValidationError as err:
            message = f"invalid spec: {_first_error(err)}"
            kopf.event(body, type="Warning", reason="InvalidSpec", message=message)
            patch.status["phase"] = Phase.FAILED.value
            patch.status["message"] = message
            raise kopf.PermanentError(message) from err
        except ConflictError as err:
            raise kopf.TemporaryError(str(err), delay=0.5) from err
        except errors.InvalidSpecError as err:
            kopf.event(body, type="Warning", reason=type(err).__name__, message=str(err))
            raise kopf.TemporaryError(str(err), delay=30) from err
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
    try:
        await _run(body, patch, memo, kwargs, deleting=False, handler="timer")
    except (kopf.TemporaryError, kopf.PermanentError):
        pass  # already reported; the next tick tries again


@kopf.on.delete(*RESOURCE)
async def on_delete(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, meta: kopf.Meta, **kwargs: Any) -> None:
    try:
        outcome = await _run(body, patch, memo, kwargs, deleting=True, handler="delete")
    except kopf.PermanentError:
        return  # an invalid spec never changed anything: nothing to undo
    if not outcome.decision.done:
        raise kopf.TemporaryError(outcome.decision.message, delay=1)
    memo.reconciler.forget(namespace=meta["namespace"], name=meta["name"])


def _first_error(err: pydantic.ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))
