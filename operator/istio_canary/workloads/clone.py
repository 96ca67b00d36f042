"""Finding the stable Deployment and cloning it into the canary.

Every function takes and returns Deployments as the API server serves them: plain dicts with
camelCase keys. Nothing here talks to the cluster.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from istio_canary.errors import (
    AmbiguousCanaryDeploymentError,
    AmbiguousStableDeploymentError,
    CanaryDeploymentNotFoundError,
    StableDeploymentNotFoundError,
    WorkloadError,
)
from istio_canary.models import CanaryReleaseSpec
from istio_canary.models.marks import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RELEASE_ANNOTATION,
    RELEASE_UID_ANNOTATION,
    SERVER_METADATA,
)

__all__ = [
    "ISTIO_REVISION_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "RELEASE_ANNOTATION",
    "RELEASE_UID_ANNOTATION",
    "build_canary_deployment",
    "canary_deployment_name",
    "canary_revision",
    "find_provided_canary",
    "find_stable_deployment",
    "hand_over_patch",
    "is_created_by",
]

Deployment = dict[str, Any]

# Written by the API server or by controllers: a new object must not carry the stable one's.
_SERVER_METADATA = (*SERVER_METADATA, "finalizers", "generateName")
# Ownership by the stable's owner (a Helm release, an Argo CD app via ownerReferences) must not
# be inherited: the operator removes the canary itself, and a canary that took over must not be
# garbage-collected with whatever owned the stable Deployment.
_NOT_INHERITED_METADATA = ("ownerReferences",)
# Istio reports a pod's version in its metrics (destination_version) from the first of these
# labels that is set, before the plain ``version`` label; an inherited one would count the
# canary's requests as the stable version's.
ISTIO_REVISION_LABEL = "service.istio.io/canonical-revision"
_ISTIO_VERSION_LABELS = (ISTIO_REVISION_LABEL, "app.kubernetes.io/version")
_NOT_INHERITED_ANNOTATIONS = (
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
)


def find_stable_deployment(
    *,
    deployments: Sequence[Mapping[str, Any]],
    service_selector: Mapping[str, str],
    version_label: str,
    version: str,
) -> Deployment:
    """The one Deployment whose pods the Service selects and whose version label is ``version``.

    Deployments being deleted are not candidates. Raises ``StableDeploymentNotFoundError`` or
    ``AmbiguousStableDeploymentError`` with a message fit for ``status.message``.
    """
    wanted = _behind_service(service_selector, version_label=version_label, version=version)
    matches = _running(deployments, wanted)
    shown = _format_labels(wanted)
    if not matches:
        raise StableDeploymentNotFoundError(
            f"no Deployment has pods labelled {shown} "
            "(the Service's selector plus versionLabel=stable.version)"
        )
    if len(matches) > 1:
        raise AmbiguousStableDeploymentError(
            f"{len(matches)} Deployments have pods labelled {shown}: {_names(matches)}; "
            "the stable version must run in exactly one Deployment"
        )
    return copy.deepcopy(dict(matches[0]))


def find_provided_canary(
    *,
    deployments: Sequence[Mapping[str, Any]],
    service_selector: Mapping[str, str],
    version_label: str,
    version: str,
    name: str | None,
) -> Deployment:
    """The Deployment someone else deployed for the canary: ``name``, or the one running ``version``.

    A named Deployment must exist and its pods must carry the Service's selector and the
    canary's version label (else the Service would never send them traffic, or the subset would
    select nothing). Raises ``CanaryDeploymentNotFoundError`` or ``AmbiguousCanaryDeploymentError``.
    """
    wanted = _behind_service(service_selector, version_label=version_label, version=version)
    shown = _format_labels(wanted)
    if name is not None:
        named = [d for d in _running(deployments, {}) if d.get("metadata", {}).get("name") == name]
        if not named:
            raise CanaryDeploymentNotFoundError(f"canary.deployment {name!r} not found in the release's namespace")
        if not _contains(_template_labels(named[0]), wanted):
            raise CanaryDeploymentNotFoundError(
                f"the pods of Deployment {name!r} are not labelled {shown} "
                "(the Service's selector plus versionLabel=canary.version): the Service would not route to them"
            )
        return copy.deepcopy(dict(named[0]))
    matches = _running(deployments, wanted)
    if not matches:
        raise CanaryDeploymentNotFoundError(
            f"no Deployment has pods labelled {shown}: deploy the canary yourself, "
            "or set canary.image (or images) to have the release create it from the stable Deployment"
        )
    if len(matches) > 1:
        raise AmbiguousCanaryDeploymentError(
            f"{len(matches)} Deployments have pods labelled {shown}: {_names(matches)}; "
            "name the canary's in canary.deployment"
        )
    return copy.deepcopy(dict(matches[0]))


def _behind_service(selector: Mapping[str, str], *, version_label: str, version: str) -> dict[str, str]:
    """The pod labels of a version behind the Service."""
    if not selector:
        # A Service without a selector routes to manually managed endpoints: no Deployment
        # can be found behind it, and every Deployment would "match" an empty selector.
        raise StableDeploymentNotFoundError(
            "the Service has no selector, so no Deployment can be found behind it"
        )
    return {**selector, version_label: version}


def _running(deployments: Sequence[Mapping[str, Any]], wanted: Mapping[str, str]) -> list[Mapping[str, Any]]:
    """Deployments not being deleted whose pods carry ``wanted``."""
    return [
        d
        for d in deployments
        if not d.get("metadata", {}).get("deletionTimestamp") and _contains(_template_labels(d), wanted)
    ]


def _names(deployments: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(sorted(str(d.get("metadata", {}).get("name")) for d in deployments))


def canary_deployment_name(spec: CanaryReleaseSpec) -> str:
    """``canary.deployment`` when named, else ``<service>-<canary.version>``.

    That is how Bookinfo names its versions (``reviews-v2``).
    """
    return spec.canary.deployment or f"{spec.service}-{spec.canary.version}"


def canary_revision(spec: CanaryReleaseSpec, *, provided: Mapping[str, Any] | None = None) -> str:
    """A short hash of the canary's images: it changes exactly when a new image is asked for.

    For a provided canary, the images are those of its pod template (someone else changes them).
    """
    images: dict[str, Any]
    if provided is not None:
        pod = provided.get("spec", {}).get("template", {}).get("spec") or {}
        containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
        images = {"provided": {str(c.get("name")): c.get("image") for c in containers}}
    else:
        images = {"image": spec.canary.image, "images": dict(sorted(spec.canary.images.items()))}
    return hashlib.sha256(json.dumps(images, sort_keys=True).encode()).hexdigest()[:12]


def build_canary_deployment(
    *,
    stable: Mapping[str, Any],
    spec: CanaryReleaseSpec,
    release_namespace: str,
    release_name: str,
    release_uid: str,
) -> Deployment:
    """The canary Deployment: a copy of ``stable`` running ``spec.canary``'s version and images.

    The version label changes on the Deployment, its selector and its pod template; owner
    references are dropped and ownership is marked with a label and annotations instead (see
    ``is_created_by``). Raises ``WorkloadError`` when the images do not fit the containers.
    """
    version_label, version = spec.version_label, spec.canary.version
    canary: Deployment = copy.deepcopy(dict(stable))
    canary.pop("status", None)

    metadata = canary.setdefault("metadata", {})
    for field in (*_SERVER_METADATA, *_NOT_INHERITED_METADATA):
        metadata.pop(field, None)
    metadata["name"] = canary_deployment_name(spec)
    metadata["labels"] = {
        **(metadata.get("labels") or {}),
        version_label: version,
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if k not in _NOT_INHERITED_ANNOTATIONS
    }
    annotations[RELEASE_ANNOTATION] = f"{release_namespace}/{release_name}"
    annotations[RELEASE_UID_ANNOTATION] = release_uid
    metadata["annotations"] = annotations

    deployment_spec = canary.setdefault("spec", {})
    # A paused stable Deployment would leave the canary paused, never rolled out, never ready.
    deployment_spec.pop("paused", None)
    deployment_spec["replicas"] = _canary_replicas(stable, spec)
    _relabel_selector(deployment_spec, version_label=version_label, version=version)
    template = deployment_spec.setdefault("template", {})
    template_metadata = template.setdefault("metadata", {})
    pod_labels = {**(template_metadata.get("labels") or {}), version_label: version}
    if any(label in pod_labels for label in _ISTIO_VERSION_LABELS if label != version_label):
        pod_labels[ISTIO_REVISION_LABEL] = version
    template_metadata["labels"] = pod_labels
    _replace_images(template.setdefault("spec", {}), spec)
    return canary


def is_created_by(
    *,
    deployment: Mapping[str, Any],
    release_namespace: str,
    release_name: str,
) -> bool:
    """Whether this release created ``deployment``: the operator never overwrites any other."""
    metadata = deployment.get("metadata", {})
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return bool(
        labels.get(MANAGED_BY_LABEL) == MANAGED_BY
        and annotations.get(RELEASE_ANNOTATION) == f"{release_namespace}/{release_name}"
    )


def hand_over_patch(
    *, deployment: Mapping[str, Any], release_namespace: str, release_name: str
) -> dict[str, Any] | None:
    """The merge patch that makes a surviving canary a plain Deployment; None: nothing to do.

    After job offline the canary is the service's only version. Without the operator's marks
    the next release clones it as its stable, and no release ever deletes it as "its" canary.
    """
    if not is_created_by(deployment=deployment, release_namespace=release_namespace, release_name=release_name):
        return None
    return {
        "metadata": {
            "labels": {MANAGED_BY_LABEL: None},
            "annotations": {RELEASE_ANNOTATION: None, RELEASE_UID_ANNOTATION: None},
        }
    }


def _canary_replicas(stable: Mapping[str, Any], spec: CanaryReleaseSpec) -> int:
    if spec.canary.replicas is not None:
        return spec.canary.replicas
    # An absent replicas field means 1 to the API server, so it means 1 here too.
    replicas = stable.get("spec", {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _relabel_selector(deployment_spec: dict[str, Any], *, version_label: str, version: str) -> None:
    selector = deployment_spec.setdefault("selector", {})
    for expression in selector.get("matchExpressions") or []:
        if expression.get("key") == version_label:
            # Rewriting an expression (In, NotIn, Exists...) safely is guesswork; refuse clearly.
            raise WorkloadError(
                f"the stable Deployment selects pods with a matchExpression on {version_label!r}; "
                "only matchLabels can be rewritten for the canary"
            )
    # Always pin the version in the canary's selector, even when the stable one does not, so
    # that the two Deployments never select each other's pods.
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), version_label: version}


def _replace_images(pod_spec: dict[str, Any], spec: CanaryReleaseSpec) -> None:
    containers: list[dict[str, Any]] = pod_spec.get("containers") or []
    if spec.canary.image is not None:
        if len(containers) != 1:
            names = ", ".join(str(c.get("name")) for c in containers)
            raise WorkloadError(
                f"canary.image needs pods with exactly one container, but the stable pods have "
                f"{len(containers)} ({names}); name each container in canary.images instead"
            )
        containers[0]["image"] = spec.canary.image
        return
    # ``images`` may also name an init container: a new version can ship a new migration step.
    by_name = {c.get("name"): c for c in [*(pod_spec.get("initContainers") or []), *containers]}
    unknown = sorted(set(spec.canary.images) - set(by_name))
    if unknown:
        known = ", ".join(sorted(str(n) for n in by_name))
        raise WorkloadError(
            f"canary.images names {', '.join(unknown)}, but the stable pods' containers are {known}"
        )
    for name, image in spec.canary.images.items():
        by_name[name]["image"] = image


def _template_labels(deployment: Mapping[str, Any]) -> Mapping[str, str]:
    template = deployment.get("spec", {}).get("template", {})
    labels: Mapping[str, str] = template.get("metadata", {}).get("labels") or {}
    return labels


def _contains(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


def _format_labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
