"""The only code that talks to the Kubernetes API (besides kopf's own machinery).

Reads build ``phases.Observed``; writes carry out ``actions`` idempotently:

* applying an object that already matches writes nothing (zero writes when nothing changed);
* deleting a missing object is success (404);
* a resourceVersion conflict raises ``ConflictError``, and the caller decides again from a
  fresh read instead of forcing a stale object over someone else's change.

The kubernetes client is synchronous; handlers call these functions in a thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from istio_canary import actions as act
from istio_canary import errors, workloads
from istio_canary import metrics as opmetrics
from istio_canary.istio import ownership, restore
from istio_canary.k8s import cache
from istio_canary.phases import Observed

__all__ = ["Cluster", "ConflictError", "Executed", "load_client"]

ISTIO_GROUP, ISTIO_VERSION = "networking.istio.io", "v1"
# The client's default for a dict body is a JSON Patch, which wants a list: name the type.
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
ROUTING_PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules"}


@dataclass(frozen=True)
class Executed:
    """What one action left in the cluster, and whether it had to write to get there."""

    stored: dict[str, Any] | None
    wrote: bool


ConflictError = errors.ConflictError  # kept here too: callers of the adapter catch it by this name


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
    """Reads and writes for one operator process; thread-safe like the client it wraps."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.policy = client.PolicyV1Api(api)

    # -- reads --------------------------------------------------------------------------------

    def observe(self, *, namespace: str, service: str) -> Observed:
        """Everything ``phases.decide`` needs, read fresh from the API server."""
        # Raw JSON, not the client's models: building V1Deployment objects and turning them back
        # into dicts cost ~10 ms of CPU per Deployment, over 1 s per reconcile in a namespace of
        # 100 Deployments (bench/control_loop.py, docs/performance.md).
        svc = self._get_or_none(
            lambda: _json(self.core.read_namespaced_service(service, namespace, _preload_content=False))
        )
        deployments = _json(self.apps.list_namespaced_deployment(namespace, _preload_content=False))
        return Observed(
            service=svc,
            deployments=tuple(deployments["items"]),
            virtual_service=self._routing_for_host("VirtualService", namespace=namespace, service=service),
            destination_rule=self._routing_for_host("DestinationRule", namespace=namespace, service=service),
        )

    def _routing_for_host(self, kind: str, *, namespace: str, service: str) -> dict[str, Any] | None:
        items = self.custom.list_namespaced_custom_object(
            ISTIO_GROUP, ISTIO_VERSION, namespace, ROUTING_PLURALS[kind]
        )["items"]
        return cache.pick_routing(items, kind=kind, namespace=namespace, service=service)

    def get_routing(self, kind: str, *, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(  # type: ignore[no-any-return]
            lambda: self.custom.get_namespaced_custom_object(ISTIO_GROUP, ISTIO_VERSION, namespace, ROUTING_PLURALS[kind], name)
        )

    # -- writes -------------------------------------------------------------------------------

    def execute(self, action: act.Action, *, observed: Observed, namespace: str, release_name: str) -> Executed:
        """Carry out one action against what ``observe`` just read (no second read).

        Writes only when the stored object differs; a replace carries the observed
        resourceVersion, so a change made since the read surfaces as ``ConflictError``. Every
        failure comes out as one of the domain errors (``errors.classify`` sorts them).
        """
        try:
            return self._execute(action, observed=observed, namespace=namespace, release_name=release_name)
        except ApiException as err:
            raise self._translate(err, _describe(action)) from err
        except (OSError, urllib3.exceptions.HTTPError) as err:
            raise errors.ApiUnavailableError(f"the API server did not answer ({_describe(action)}): {err}") from err

    def _execute(self, action: act.Action, *, observed: Observed, namespace: str, release_name: str) -> Executed:
        if isinstance(action, act.ApplyRouting):
            current = _named(_routing_of(observed, action.kind), action.body["metadata"]["name"])
            return self.apply_routing(action.kind, action.body, current=current, namespace=namespace)
        if isinstance(action, act.RestoreRouting):
            current = _named(_routing_of(observed, action.kind), action.name)
            return self.restore_routing(action.kind, current=current, namespace=namespace, release_name=release_name)
        if isinstance(action, act.PatchObject):
            return self.patch_object(action, namespace=namespace)
        if isinstance(action, act.ApplyCompanion):
            return self.apply_companion(action, current=_companion(observed, action.kind, action.body), namespace=namespace)
        if isinstance(action, act.DeleteObject) and action.kind != "Deployment":
            if _companion(observed, action.kind, {"metadata": {"name": action.name}}) is None:
                return Executed(stored=None, wrote=False)
            self._ignore_404(lambda: self._companion_api(action.kind, "delete")(action.name, namespace))
            return Executed(stored=None, wrote=True)
        name = action.body["metadata"]["name"] if isinstance(action, act.ApplyDeployment) else action.name
        deployment = next((d for d in observed.deployments if d["metadata"]["name"] == name), None)
        if isinstance(action, act.ApplyDeployment):
            return self.apply_deployment(action.body, current=deployment, namespace=namespace, release_name=release_name)
        if isinstance(action, act.DeleteObject):
            if deployment is None:
                return Executed(stored=None, wrote=False)
            self._ignore_404(
                lambda: self.apps.delete_namespaced_deployment(action.name, namespace, propagation_policy="Background")
            )
            return Executed(stored=None, wrote=True)
        if isinstance(action, act.ScaleDeployment):
            if deployment is None or deployment.get("spec", {}).get("replicas") == action.replicas:
                return Executed(stored=deployment, wrote=False)
            patched = self.apps.patch_namespaced_deployment(
                action.name, namespace, {"spec": {"replicas": action.replicas}},
                _content_type=MERGE_PATCH, _preload_content=False,
            )
            return Executed(stored=_json(patched), wrote=True)
        raise TypeError(f"unknown action {action!r}")

    def apply_routing(
        self, kind: str, body: dict[str, Any], *, current: dict[str, Any] | None, namespace: str
    ) -> Executed:
        plural, name = ROUTING_PLURALS[kind], body["metadata"]["name"]
        try:
            if current is None:
                created: dict[str, Any] = self.custom.create_namespaced_custom_object(
                    ISTIO_GROUP, ISTIO_VERSION, namespace, plural, body
                )
                return Executed(stored=created, wrote=True)
            desired = _merged(current, body)
            if desired == current:
                return Executed(stored=current, wrote=False)
            replaced: dict[str, Any] = self.custom.replace_namespaced_custom_object(
                ISTIO_GROUP, ISTIO_VERSION, namespace, plural, name, desired
            )
            return Executed(stored=replaced, wrote=True)
        except ApiException as err:
            raise self._translate(err, f"{kind} {name}") from err

    def restore_routing(
        self, kind: str, *, current: dict[str, Any] | None, namespace: str, release_name: str
    ) -> Executed:
        """Put back what the release found: the recorded original, or nothing when it created the object."""
        if current is None:
            return Executed(stored=None, wrote=False)
        name = current["metadata"]["name"]
        owner = (current.get("metadata", {}).get("labels") or {}).get(ownership.RELEASE_LABEL)
        if owner != release_name:
            return Executed(stored=current, wrote=False)  # never touched by this release: not ours to restore
        original = restore.restored_object(current)
        try:
            if original is None:
                self._ignore_404(
                    lambda: self.custom.delete_namespaced_custom_object(
                        ISTIO_GROUP, ISTIO_VERSION, namespace, ROUTING_PLURALS[kind], name
                    )
                )
                return Executed(stored=None, wrote=True)
            restored: dict[str, Any] = self.custom.replace_namespaced_custom_object(
                ISTIO_GROUP, ISTIO_VERSION, namespace, ROUTING_PLURALS[kind], name, original
            )
            return Executed(stored=restored, wrote=True)
        except ApiException as err:
            raise self._translate(err, f"{kind} {name}") from err

    def apply_companion(
        self, action: act.ApplyCompanion, *, current: dict[str, Any] | None, namespace: str
    ) -> Executed:
        """Create the canary's HPA or PDB copy, or replace its spec (conflict-checked) when it differs."""
        if current is None:
            created = self._companion_api(action.kind, "create")(namespace, action.body, _preload_content=False)
            return Executed(stored=_json(created), wrote=True)
        desired = _merged(current, action.body)
        if desired == current:
            return Executed(stored=current, wrote=False)
        name = current["metadata"]["name"]
        replaced = self._companion_api(action.kind, "replace")(name, namespace, desired, _preload_content=False)
        return Executed(stored=_json(replaced), wrote=True)

    def _companion_api(self, kind: str, verb: str) -> Any:
        if kind == "HorizontalPodAutoscaler":
            return getattr(self.autoscaling, f"{verb}_namespaced_horizontal_pod_autoscaler")
        return getattr(self.policy, f"{verb}_namespaced_pod_disruption_budget")

    def patch_object(self, action: act.PatchObject, *, namespace: str) -> Executed:
        """A JSON merge patch; a missing object is success (nothing left to patch)."""
        try:
            if action.kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
                response = self._companion_api(action.kind, "patch")(
                    action.name, namespace, action.patch, _content_type=MERGE_PATCH, _preload_content=False
                )
                return Executed(stored=_json(response), wrote=True)
            if action.kind == "Deployment":
                response = self.apps.patch_namespaced_deployment(
                    action.name, namespace, action.patch, _content_type=MERGE_PATCH, _preload_content=False
                )
                return Executed(stored=_json(response), wrote=True)
            stored: dict[str, Any] = self.custom.patch_namespaced_custom_object(
                ISTIO_GROUP, ISTIO_VERSION, namespace, ROUTING_PLURALS[action.kind], action.name, action.patch,
                _content_type=MERGE_PATCH,
            )
            return Executed(stored=stored, wrote=True)
        except ApiException as err:
            if err.status == 404:
                return Executed(stored=None, wrote=False)
            raise self._translate(err, f"{action.kind} {action.name}") from err

    def apply_deployment(
        self, body: dict[str, Any], *, current: dict[str, Any] | None, namespace: str, release_name: str
    ) -> Executed:
        name = body["metadata"]["name"]
        try:
            if current is None:
                created = self.apps.create_namespaced_deployment(namespace, body, _preload_content=False)
                return Executed(stored=_json(created), wrote=True)
            if not workloads.is_created_by(deployment=current, release_namespace=namespace, release_name=release_name):
                raise errors.DeploymentConflictError(f"Deployment {name} exists and was not created by this release")
            patch = workloads.deployment_patch(current=current, desired=body)
            if patch is None:
                return Executed(stored=current, wrote=False)
            # Strategic merge: containers are merged by name, so an image change keeps the rest.
            patched = self.apps.patch_namespaced_deployment(
                name, namespace, patch, _content_type=STRATEGIC_MERGE_PATCH, _preload_content=False
            )
            return Executed(stored=_json(patched), wrote=True)
        except ApiException as err:
            raise self._translate(err, f"Deployment {name}") from err

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _get_or_none(fn: Any) -> Any:
        try:
            return fn()
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    @staticmethod
    def _ignore_404(fn: Any) -> None:
        try:
            fn()
        except ApiException as err:
            if err.status != 404:
                raise

    @staticmethod
    def _translate(err: ApiException, what: str) -> Exception:
        opmetrics.count_api_error(verb="write", resource=what.split(" ")[0], code=err.status or "")
        if err.status == 409:
            return ConflictError(f"{what} changed while being written; deciding again")
        try:
            message = json.loads(err.body or "{}").get("message", err.reason)
        except ValueError:
            message = err.reason
        code = int(err.status or 0)
        if code == 422 and what.split(" ")[0] in ROUTING_PLURALS:
            return errors.RoutingError(f"the API server refused {what}: {message}")
        if 400 <= code < 500:
            return errors.ApiRefusedError(f"the API server refused {what} (HTTP {code}): {message}", code=code)
        return errors.ApiUnavailableError(f"the API server could not write {what} (HTTP {code or 'no answer'}): {message}")


def _describe(action: act.Action) -> str:
    if isinstance(action, (act.ApplyRouting, act.ApplyDeployment, act.ApplyCompanion)):
        kind = "Deployment" if isinstance(action, act.ApplyDeployment) else action.kind
        return f"{kind} {action.body['metadata']['name']}"
    if isinstance(action, act.ScaleDeployment):
        return f"Deployment {action.name}"
    return f"{action.kind} {action.name}"


def _companion(observed: Observed, kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
    listed = observed.autoscalers if kind == "HorizontalPodAutoscaler" else observed.disruption_budgets
    return next((o for o in listed if o["metadata"]["name"] == body["metadata"]["name"]), None)


def _routing_of(observed: Observed, kind: str) -> dict[str, Any] | None:
    return observed.virtual_service if kind == "VirtualService" else observed.destination_rule


def _named(obj: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    return obj if obj is not None and obj["metadata"]["name"] == name else None


def _json(response: Any) -> dict[str, Any]:
    """The body of a response read with ``_preload_content=False``."""
    return cast(dict[str, Any], json.loads(response.data))


def _merged(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The current object with the desired spec and with our labels and annotations added."""
    merged: dict[str, Any] = json.loads(json.dumps(current))
    merged["spec"] = desired.get("spec", {})
    meta, want = merged.setdefault("metadata", {}), desired.get("metadata", {})
    for key in ("labels", "annotations"):
        if want.get(key):
            meta[key] = {**(meta.get(key) or {}), **want[key]}
    return merged
