"""The stable version's HorizontalPodAutoscaler and PodDisruptionBudgets, copied for the canary.

An autoscaled service stays autoscaled during a release: the canary gets an HPA with the same
bounds and metrics that targets the canary Deployment, and a PDB that protects the stable
version's pods gets a twin for the canary's. The copies carry the same ownership marks as the
canary Deployment, so they go with it on abort and are handed over with it after job offline.
Objects of these kinds that the operator did not create are never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from istio_canary.workloads.clone import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RELEASE_ANNOTATION,
    RELEASE_UID_ANNOTATION,
)

__all__ = ["API_VERSIONS", "HPA", "PDB", "build_canary_companions", "companion_name"]

HPA = "HorizontalPodAutoscaler"
PDB = "PodDisruptionBudget"
# The versions the operator watches and writes (both GA since Kubernetes 1.23 and 1.21).
API_VERSIONS = {HPA: "autoscaling/v2", PDB: "policy/v1"}
_KEPT_METADATA = ("labels", "annotations")
_NOT_INHERITED_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "autoscaling.alpha.kubernetes.io/conditions",
    "autoscaling.alpha.kubernetes.io/current-metrics",
)


def companion_name(*, stable_object: str, stable_deployment: str, canary_deployment: str, canary_version: str) -> str:
    """``reviews-v1`` -> ``reviews-v2`` when named after the stable Deployment, else ``<name>-<version>``."""
    if stable_object == stable_deployment:
        return canary_deployment
    return f"{stable_object}-{canary_version}"[:253]


def build_canary_companions(
    *,
    stable: Mapping[str, Any],
    canary_name: str,
    canary_version: str,
    version_label: str,
    autoscalers: Sequence[Mapping[str, Any]],
    disruption_budgets: Sequence[Mapping[str, Any]],
    release: str,
    release_uid: str,
) -> list[dict[str, Any]]:
    """The canary's copies of the HPA targeting ``stable`` and of the PDBs selecting its version.

    ``release`` is ``<namespace>/<name>``. A PDB that selects pods of both versions alike (no
    version label in its selector) already protects the canary and is not copied.
    """
    stable_name = str(stable["metadata"]["name"])
    stable_version = ((stable.get("spec") or {}).get("template", {}).get("metadata", {}).get("labels") or {}).get(
        version_label
    )
    copies: list[dict[str, Any]] = []
    for hpa in autoscalers:
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind") != "Deployment" or target.get("name") != stable_name:
            continue
        name = _name(hpa, stable_name, canary_name, canary_version)
        body = _copy(hpa, kind=HPA, name=name, release=release, uid=release_uid)
        body["spec"]["scaleTargetRef"] = {**target, "name": canary_name}
        copies.append(body)
    for pdb in disruption_budgets:
        selector = (pdb.get("spec") or {}).get("selector") or {}
        labels = selector.get("matchLabels") or {}
        if stable_version is None or labels.get(version_label) != stable_version:
            continue
        name = _name(pdb, stable_name, canary_name, canary_version)
        body = _copy(pdb, kind=PDB, name=name, release=release, uid=release_uid)
        body["spec"]["selector"] = {**selector, "matchLabels": {**labels, version_label: canary_version}}
        copies.append(body)
    return copies


def _name(obj: Mapping[str, Any], stable_name: str, canary_name: str, canary_version: str) -> str:
    return companion_name(
        stable_object=str(obj["metadata"]["name"]),
        stable_deployment=stable_name,
        canary_deployment=canary_name,
        canary_version=canary_version,
    )


def _copy(obj: Mapping[str, Any], *, kind: str, name: str, release: str, uid: str) -> dict[str, Any]:
    source = obj.get("metadata") or {}
    metadata: dict[str, Any] = {k: copy.deepcopy(source[k]) for k in _KEPT_METADATA if source.get(k)}
    metadata["name"] = name
    metadata["labels"] = {**(metadata.get("labels") or {}), MANAGED_BY_LABEL: MANAGED_BY}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k not in _NOT_INHERITED_ANNOTATIONS}
    metadata["annotations"] = {**annotations, RELEASE_ANNOTATION: release, RELEASE_UID_ANNOTATION: uid}
    return {
        "apiVersion": API_VERSIONS[kind],
        "kind": kind,
        "metadata": metadata,
        "spec": copy.deepcopy(dict(obj.get("spec") or {})),
    }
