"""Routing mode Services: one Service per version, and the released Service pinned to one version.

With DestinationRule subsets, only Envoy tells the versions apart: a client that reaches the
released Service without a sidecar (a NodePort, a LoadBalancer, a pod outside the mesh, another
ingress controller) is balanced by the Service's selector over both versions' pods, canary
included, whatever the weights. In this mode the routes name each version's own Service
(``reviews-v1``, ``reviews-v2``: the released Service's selector plus the version label, its
ports), and the released Service's selector gets the version label of the version that has all
the traffic: stable until a take over, the canary after one. Mesh clients follow the weights;
every other client reaches one version only.

The selector the user wrote is recorded, as JSON, in the ``original-selector`` annotation when
it is first pinned, and put back exactly when the release completes, aborts or is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from istio_canary.errors import ForeignObjectError
from istio_canary.istio.routes import version_service_name
from istio_canary.models.marks import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ORIGINAL_SELECTOR_ANNOTATION,
    RELEASE_LABEL,
)
from istio_canary.models.merge_patch import merge_patch

__all__ = [
    "build_version_service",
    "is_ours",
    "pin_patch",
    "service_patch",
    "unpin_patch",
    "version_service_name",
]

# The port fields a version's Service copies; nodePort stays with the released Service.
_PORT_FIELDS = ("name", "port", "targetPort", "protocol", "appProtocol")


def is_ours(obj: Mapping[str, Any], *, release_name: str) -> bool:
    """Whether ``obj`` is a version Service this release created."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(RELEASE_LABEL) == release_name


def build_version_service(
    *,
    service: Mapping[str, Any],
    version: str,
    version_label: str,
    release_name: str,
    existing: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The Service of ``version``: the released Service's selector and ports, plus the version label.

    Raises ForeignObjectError when a Service of that name exists and this release did not create it:
    the operator never overwrites a Service it did not make.
    """
    name = version_service_name(str(service["metadata"]["name"]), version)
    if existing is not None and not is_ours(existing, release_name=release_name):
        owner = (existing.get("metadata", {}).get("labels") or {}).get(RELEASE_LABEL)
        whose = f"belongs to release {owner!r}" if owner else "was not created by this release"
        raise ForeignObjectError(
            f"Service {name!r} {whose}: routing.mode Services needs that name for version {version}'s "
            "own Service (rename or delete the existing one, or use routing.mode Subsets)"
        )
    spec = service.get("spec") or {}
    selector = {**(spec.get("selector") or {}), version_label: version}
    ports = [
        {key: entry[key] for key in _PORT_FIELDS if key in entry} for entry in spec.get("ports") or []
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, RELEASE_LABEL: release_name},
        },
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    }


def service_patch(*, current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that gives ``current`` the selector and ports of ``desired`` (None: they match).

    Only those fields: the API server fills in the rest of a Service's spec (clusterIP, ipFamilies),
    and a patch that removed them would be refused.
    """
    now, want = current.get("spec") or {}, desired.get("spec") or {}
    ports_now = [_port(entry) for entry in now.get("ports") or []]
    ports_want = [_port(entry) for entry in want.get("ports") or []]
    selector = merge_patch(now.get("selector") or {}, want.get("selector") or {})
    patch: dict[str, Any] = {}
    if selector:
        patch["selector"] = selector
    if ports_now != ports_want:
        patch["ports"] = want.get("ports") or []
    return {"spec": patch} if patch else None


def _port(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A port as compared: targetPort and protocol as the API server defaults them."""
    port = {key: entry[key] for key in _PORT_FIELDS if key in entry}
    port.setdefault("targetPort", port.get("port"))
    port.setdefault("protocol", "TCP")
    return port


def pin_patch(service: Mapping[str, Any], *, version_label: str, version: str) -> dict[str, Any] | None:
    """The merge patch that pins the released Service to ``version`` (None: it already is).

    The first pin records the selector as the user wrote it; later pins keep that record.
    """
    meta = service.get("metadata") or {}
    selector = (service.get("spec") or {}).get("selector") or {}
    recorded = (meta.get("annotations") or {}).get(ORIGINAL_SELECTOR_ANNOTATION)
    if recorded is not None and selector.get(version_label) == version:
        return None
    patch: dict[str, Any] = {"spec": {"selector": {version_label: version}}}
    if recorded is None:
        original = json.dumps(selector, sort_keys=True, separators=(",", ":"))
        patch["metadata"] = {"annotations": {ORIGINAL_SELECTOR_ANNOTATION: original}}
    return patch


def unpin_patch(service: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that puts back the selector the user wrote (None: it was never pinned).

    Raises ForeignObjectError when the record is not a JSON object of strings: the operator does
    not guess a selector.
    """
    meta = service.get("metadata") or {}
    recorded = (meta.get("annotations") or {}).get(ORIGINAL_SELECTOR_ANNOTATION)
    if recorded is None:
        return None
    try:
        original = json.loads(recorded)
    except json.JSONDecodeError as error:
        original, problem = None, str(error)
    else:
        problem = "not an object of strings"
    if not isinstance(original, dict) or not all(isinstance(v, str) for v in original.values()):
        raise ForeignObjectError(
            f"Service {meta.get('name')!r}: annotation {ORIGINAL_SELECTOR_ANNOTATION} is {problem}; "
            "refusing to guess the selector to restore"
        )
    selector = (service.get("spec") or {}).get("selector") or {}
    patch: dict[str, Any] = {"metadata": {"annotations": {ORIGINAL_SELECTOR_ANNOTATION: None}}}
    restored = merge_patch(selector, original)
    if restored:
        patch["spec"] = {"selector": restored}
    return patch
