"""The smallest patch that brings an existing canary Deployment to the desired one.

Only the fields the operator owns are compared: labels (on the Deployment and its pod
template), replicas, and container images. Anything else someone changed on the canary is
left alone, and nothing to change means no patch at all, so a repeated reconcile writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["deployment_patch"]


def deployment_patch(
    *,
    current: Mapping[str, Any],
    desired: Mapping[str, Any],
) -> dict[str, Any] | None:
    """A strategic merge patch from ``current`` to ``desired`` for the owned fields, or None.

    Send it as ``application/strategic-merge-patch+json``: containers are merged by name there,
    whereas a JSON merge patch would replace the whole container list with name and image only.
    The selector is never patched (it is immutable); labels are only added or changed, never
    removed.
    """
    patch: dict[str, Any] = {}
    labels = _changed_labels(current.get("metadata"), desired.get("metadata"))
    if labels:
        patch["metadata"] = {"labels": labels}

    current_spec = current.get("spec") or {}
    desired_spec = desired.get("spec") or {}
    spec_patch: dict[str, Any] = {}
    desired_replicas = desired_spec.get("replicas")
    if desired_replicas is not None and desired_replicas != current_spec.get("replicas"):
        spec_patch["replicas"] = desired_replicas

    template_patch = _template_patch(current_spec.get("template"), desired_spec.get("template"))
    if template_patch:
        spec_patch["template"] = template_patch
    if spec_patch:
        patch["spec"] = spec_patch
    return patch or None


def _template_patch(
    current: Mapping[str, Any] | None, desired: Mapping[str, Any] | None
) -> dict[str, Any]:
    current, desired = current or {}, desired or {}
    patch: dict[str, Any] = {}
    labels = _changed_labels(current.get("metadata"), desired.get("metadata"))
    if labels:
        patch["metadata"] = {"labels": labels}
    pod_patch: dict[str, Any] = {}
    for key in ("initContainers", "containers"):
        images = _changed_images(
            (current.get("spec") or {}).get(key), (desired.get("spec") or {}).get(key)
        )
        if images:
            pod_patch[key] = images
    if pod_patch:
        patch["spec"] = pod_patch
    return patch


def _changed_labels(
    current: Mapping[str, Any] | None, desired: Mapping[str, Any] | None
) -> dict[str, str]:
    have = (current or {}).get("labels") or {}
    want = (desired or {}).get("labels") or {}
    return {key: value for key, value in want.items() if have.get(key) != value}


def _changed_images(
    current: list[Mapping[str, Any]] | None,
    desired: list[Mapping[str, Any]] | None,
) -> list[dict[str, str]]:
    have = {c.get("name"): c.get("image") for c in current or []}
    # A container missing from the current Deployment is not added back: a patch holding only
    # a name and an image would create a half-specified container.
    return [
        {"name": c["name"], "image": c["image"]}
        for c in desired or []
        if c.get("name") in have and have[c.get("name")] != c.get("image")
    ]
