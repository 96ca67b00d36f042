"""The only code that writes to the Kubernetes API (kopf's watches do the reading).

Each action from ``phases.decide`` is carried out against the object as observed, idempotently
and without deciding anything:

* applying an object that already matches writes nothing (zero writes when nothing changed);
* deleting a missing object is success (404), and so is patching one;
* a replace carries the observed resourceVersion, so a change made since the read surfaces as
  ``errors.ConflictError`` and the caller decides again instead of forcing a stale object;
* every other failure comes out as ``errors.ApiRefusedError`` (4xx) or
  ``errors.ApiUnavailableError`` (5xx, no answer), which ``errors.classify`` sorts.

The kubernetes client is synchronous; the reconciler calls ``execute`` in a thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, assert_never, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from istio_canary import actions as act
from istio_canary import errors, workloads
from istio_canary import metrics as opmetrics
from istio_canary.istio import version_services
from istio_canary.models.marks import ISTIO_GROUP, ISTIO_VERSION
from istio_canary.models.merge_patch import merge_patch
from istio_canary.phases import Observed

__all__ = ["ISTIO_GROUP", "ISTIO_VERSION", "Cluster", "ConflictError", "Executed", "load_client"]

# The client's default for a dict body is a JSON Patch, which wants a list: name the type.
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
ROUTING_PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules"}

ConflictError = errors.ConflictError  # callers of the adapter may catch it by this name


@dataclass(frozen=True)
class Executed:
    """What one action left in the cluster, and whether it had to write to get there."""

    stored: dict[str, Any] | None
    wrote: bool


@dataclass(frozen=True)
class _Verbs:
    """The four calls of one kind, each answering raw JSON."""

    create: Callable[[str, dict[str, Any]], Any]
    replace: Callable[[str, str, dict[str, Any]], Any]
    patch: Callable[[str, str, dict[str, Any], str], Any]
    delete: Callable[[str, str], Any]


def load_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except config.ConfigException:
            pass
    return config.new_client_from_config(config_file=kubeconfig, context=context)


class Cluster:
    """Writes for one operator process; thread-safe like the client it wraps."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._verbs = _kinds(api)

    def execute(self, action: act.Action, *, observed: Observed, namespace: str) -> Executed:
        """Carry out one action against the object as ``observed`` holds it (no second read)."""
        try:
            return self._execute(action, observed=observed, namespace=namespace)
        except ApiException as err:
            raise _translate(err, _describe(action)) from err
        except (OSError, urllib3.exceptions.HTTPError) as err:
            raise errors.ApiUnavailableError(f"the API server did not answer ({_describe(action)}): {err}") from err

    def _execute(self, action: act.Action, *, observed: Observed, namespace: str) -> Executed:
        match action:
            case act.ApplyRouting(kind=kind, body=body, namespace=where):
                where = where or namespace
                return self._apply(kind, body, current=_current(observed, kind, _name(body), where), namespace=where)
            case act.ApplyCompanion(kind=kind, body=body):
                return self._apply(kind, body, current=_current(observed, kind, _name(body)), namespace=namespace)
            case act.ApplyService(body=body):
                current = _current(observed, "Service", _name(body))
                return self._apply_service(body, current=current, namespace=namespace)
            case act.ApplyDeployment(body=body):
                return self._apply_deployment(
                    body, current=_current(observed, "Deployment", _name(body)), namespace=namespace
                )
            case act.ReplaceRouting(kind=kind, body=body, namespace=where):
                where = where or namespace
                current = _current(observed, kind, _name(body), where)
                return self._replace_routing(kind, body, current=current, namespace=where)
            case act.DeleteObject(kind=kind, name=name):
                if _current(observed, kind, name) is None:
                    return Executed(stored=None, wrote=False)
                return self._delete(kind, name, namespace=namespace)
            case act.ScaleDeployment(name=name, replicas=replicas):
                current = _current(observed, "Deployment", name)
                if current is None or current.get("spec", {}).get("replicas") == replicas:
                    return Executed(stored=current, wrote=False)
                stored = self._verbs["Deployment"].patch(name, namespace, {"spec": {"replicas": replicas}}, MERGE_PATCH)
                return Executed(stored=_json(stored), wrote=True)
            case act.PatchObject(kind=kind, name=name, patch=patch, namespace=where):
                return self._patch(kind, name, patch, namespace=where or namespace)
            case _:
                assert_never(action)

    def _apply(self, kind: str, body: dict[str, Any], *, current: dict[str, Any] | None, namespace: str) -> Executed:
        """Create, or replace (conflict-checked) the spec and add our labels when they differ."""
        if current is None:
            return Executed(stored=_json(self._verbs[kind].create(namespace, body)), wrote=True)
        desired = _merged(current, body)
        if desired == current:
            return Executed(stored=current, wrote=False)
        return self._patch_to(kind, current=current, desired=desired, namespace=namespace)

    def _replace_routing(
        self, kind: str, body: dict[str, Any], *, current: dict[str, Any] | None, namespace: str
    ) -> Executed:
        """Make the object exactly ``body`` (a restored original), conflict-checked."""
        if current is None:
            return Executed(stored=_json(self._verbs[kind].replace(_name(body), namespace, body)), wrote=True)
        return self._patch_to(kind, current=current, desired=body, namespace=namespace)

    def _patch_to(self, kind: str, *, current: dict[str, Any], desired: dict[str, Any], namespace: str) -> Executed:
        """Turn ``current`` into ``desired`` with a merge patch carrying its resourceVersion.

        A patch, not a replace: the cached copy lacks what the cache drops (kubectl's
        last-applied-configuration), and a replace from it would delete that from the object.
        The resourceVersion makes the patch fail with a conflict if the object changed since.
        """
        patch = merge_patch(_without_status(current), _without_status(desired))
        if not patch:
            return Executed(stored=current, wrote=False)
        patch.setdefault("metadata", {})["resourceVersion"] = str(
            desired.get("metadata", {}).get("resourceVersion") or current["metadata"].get("resourceVersion", "")
        )
        return Executed(
            stored=_json(self._verbs[kind].patch(_name(desired), namespace, patch, MERGE_PATCH)), wrote=True
        )

    def _apply_deployment(self, body: dict[str, Any], *, current: dict[str, Any] | None, namespace: str) -> Executed:
        if current is None:
            return Executed(stored=_json(self._verbs["Deployment"].create(namespace, body)), wrote=True)
        patch = workloads.deployment_patch(current=current, desired=body)
        if patch is None:
            return Executed(stored=current, wrote=False)
        # Strategic merge: containers are merged by name, so an image change keeps the rest.
        stored = self._verbs["Deployment"].patch(_name(body), namespace, patch, STRATEGIC_MERGE_PATCH)
        return Executed(stored=_json(stored), wrote=True)

    def _apply_service(self, body: dict[str, Any], *, current: dict[str, Any] | None, namespace: str) -> Executed:
        if current is None:
            return Executed(stored=_json(self._verbs["Service"].create(namespace, body)), wrote=True)
        patch = version_services.service_patch(current=current, desired=body)
        if patch is None:
            return Executed(stored=current, wrote=False)
        patch["metadata"] = {"resourceVersion": str(current["metadata"].get("resourceVersion", ""))}
        stored = self._verbs["Service"].patch(_name(body), namespace, patch, MERGE_PATCH)
        return Executed(stored=_json(stored), wrote=True)

    def _delete(self, kind: str, name: str, *, namespace: str) -> Executed:
        try:
            self._verbs[kind].delete(name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise
        return Executed(stored=None, wrote=True)

    def _patch(self, kind: str, name: str, patch: dict[str, Any], *, namespace: str) -> Executed:
        try:
            return Executed(stored=_json(self._verbs[kind].patch(name, namespace, patch, MERGE_PATCH)), wrote=True)
        except ApiException as err:
            if err.status == 404:
                return Executed(stored=None, wrote=False)
            raise


def _kinds(api: client.ApiClient) -> dict[str, _Verbs]:
    """The calls for every kind the operator writes, each asked for raw JSON (no model objects)."""
    apps, core, custom = client.AppsV1Api(api), client.CoreV1Api(api), client.CustomObjectsApi(api)
    autoscaling, policy = client.AutoscalingV2Api(api), client.PolicyV1Api(api)
    raw: dict[str, Any] = {"_preload_content": False}
    verbs = {
        "Service": _Verbs(
            create=lambda ns, body: core.create_namespaced_service(ns, body, **raw),
            replace=lambda name, ns, body: core.replace_namespaced_service(name, ns, body, **raw),
            patch=lambda name, ns, p, ct: core.patch_namespaced_service(name, ns, p, _content_type=ct, **raw),
            delete=core.delete_namespaced_service,
        ),
        "Deployment": _Verbs(
            create=lambda ns, body: apps.create_namespaced_deployment(ns, body, **raw),
            replace=lambda name, ns, body: apps.replace_namespaced_deployment(name, ns, body, **raw),
            patch=lambda name, ns, p, ct: apps.patch_namespaced_deployment(name, ns, p, _content_type=ct, **raw),
            delete=lambda name, ns: apps.delete_namespaced_deployment(name, ns, propagation_policy="Background"),
        ),
        "HorizontalPodAutoscaler": _Verbs(
            create=lambda ns, body: autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, body, **raw),
            replace=lambda name, ns, body: autoscaling.replace_namespaced_horizontal_pod_autoscaler(
                name, ns, body, **raw
            ),
            patch=lambda name, ns, p, ct: autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                name, ns, p, _content_type=ct, **raw
            ),
            delete=autoscaling.delete_namespaced_horizontal_pod_autoscaler,
        ),
        "PodDisruptionBudget": _Verbs(
            create=lambda ns, body: policy.create_namespaced_pod_disruption_budget(ns, body, **raw),
            replace=lambda name, ns, body: policy.replace_namespaced_pod_disruption_budget(name, ns, body, **raw),
            patch=lambda name, ns, p, ct: policy.patch_namespaced_pod_disruption_budget(
                name, ns, p, _content_type=ct, **raw
            ),
            delete=policy.delete_namespaced_pod_disruption_budget,
        ),
    }
    for kind, plural in ROUTING_PLURALS.items():
        verbs[kind] = _routing_verbs(custom, plural)
    return verbs


def _routing_verbs(custom: client.CustomObjectsApi, plural: str) -> _Verbs:
    group, version, raw = ISTIO_GROUP, ISTIO_VERSION, {"_preload_content": False}

    def create(ns: str, body: dict[str, Any]) -> Any:
        return custom.create_namespaced_custom_object(group, version, ns, plural, body, **raw)

    def replace(name: str, ns: str, body: dict[str, Any]) -> Any:
        return custom.replace_namespaced_custom_object(group, version, ns, plural, name, body, **raw)

    def patch(name: str, ns: str, body: dict[str, Any], content_type: str) -> Any:
        return custom.patch_namespaced_custom_object(
            group, version, ns, plural, name, body, _content_type=content_type, **raw
        )

    def delete(name: str, ns: str) -> Any:
        return custom.delete_namespaced_custom_object(group, version, ns, plural, name)

    return _Verbs(create=create, replace=replace, patch=patch, delete=delete)


def _translate(err: ApiException, what: str) -> Exception:
    """A refused write as a domain error; the API server's message (never a remote body) is kept."""
    opmetrics.count_api_error(verb="write", resource=what.split(" ", maxsplit=1)[0], code=err.status or "")
    code = int(err.status or 0)
    if code == 409:
        return errors.ConflictError(f"{what} changed while being written; deciding again")
    try:
        message = json.loads(err.body or "{}").get("message", err.reason)
    except ValueError:
        message = err.reason
    if 400 <= code < 500:
        return errors.ApiRefusedError(f"the API server refused {what} (HTTP {code}): {message}", code=code)
    return errors.ApiUnavailableError(f"the API server could not write {what} (HTTP {code or 'no answer'}): {message}")


def _current(observed: Observed, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    """The object of that kind and name as observed (None: it does not exist).

    ``namespace`` tells apart the VirtualServices of other namespaces (None: the release's).
    """
    listed: tuple[dict[str, Any] | None, ...]
    match kind:
        case "Deployment":
            listed = observed.deployments
        case "HorizontalPodAutoscaler":
            listed = observed.autoscalers
        case "PodDisruptionBudget":
            listed = observed.disruption_budgets
        case "VirtualService":
            listed = (observed.virtual_service, *observed.edge_virtual_services)
        case "Service":
            listed = (observed.service, *observed.version_services)
        case _:
            listed = (observed.destination_rule,)
    return next(
        (
            o for o in listed
            if o is not None and o["metadata"]["name"] == name
            and (namespace is None or o["metadata"].get("namespace", namespace) == namespace)
        ),
        None,
    )


def _describe(action: act.Action) -> str:
    match action:
        case act.ApplyRouting(kind=kind, body=body) | act.ApplyCompanion(kind=kind, body=body) | act.ReplaceRouting(
            kind=kind, body=body
        ):
            return f"{kind} {_name(body)}"
        case act.ApplyDeployment(body=body):
            return f"Deployment {_name(body)}"
        case act.ApplyService(body=body):
            return f"Service {_name(body)}"
        case act.ScaleDeployment(name=name):
            return f"Deployment {name}"
        case act.DeleteObject(kind=kind, name=name) | act.PatchObject(kind=kind, name=name):
            return f"{kind} {name}"
        case _:
            assert_never(action)


def _name(body: dict[str, Any]) -> str:
    return str(body["metadata"]["name"])


def _json(response: Any) -> dict[str, Any]:
    """The body of a response read with ``_preload_content=False``."""
    return cast(dict[str, Any], json.loads(response.data))


def _without_status(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "status"}


def _merged(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The current object with the desired spec and with our labels and annotations added."""
    merged: dict[str, Any] = json.loads(json.dumps(current))
    merged["spec"] = desired.get("spec", {})
    meta, want = merged.setdefault("metadata", {}), desired.get("metadata", {})
    for key in ("labels", "annotations"):
        if want.get(key):
            meta[key] = {**(meta.get(key) or {}), **want[key]}
    return merged
