"""Who a routing object belongs to: created by a release, adopted by one, or someone else's.

A VirtualService or DestinationRule the operator *creates* carries the owner labels and is
deleted when the release is undone. One that already existed is *adopted*: its spec before the
first change is kept, as JSON, in the ``original-spec`` annotation, and put back on abort or
delete. The annotation is written once, so rebuilding an adopted object never loses the
original.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from istio_canary.errors import ForeignObjectError
from istio_canary.models.marks import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ORIGINAL_SPEC_ANNOTATION,
    RELEASE_LABEL,
    SERVER_METADATA,
)

__all__ = [
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "ORIGINAL_SPEC_ANNOTATION",
    "RELEASE_LABEL",
    "Start",
    "created_by_operator",
    "hand_over_patch",
    "recorded_original",
    "starting_point",
]



def created_by_operator(obj: Mapping[str, Any]) -> bool:
    """Whether the operator created ``obj`` (rather than adopting it or never touching it)."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY_LABEL) == MANAGED_BY)


def recorded_original(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The spec recorded when ``obj`` was adopted; None when it was never adopted."""
    metadata = obj.get("metadata", {})
    recorded = (metadata.get("annotations") or {}).get(ORIGINAL_SPEC_ANNOTATION)
    if recorded is None:
        return None
    try:
        spec = json.loads(recorded)
    except json.JSONDecodeError as error:
        raise ForeignObjectError(
            f"{obj.get('kind', 'object')} {metadata.get('name')!r}: annotation "
            f"{ORIGINAL_SPEC_ANNOTATION} is not JSON ({error}); refusing to guess the original"
        ) from None
    if not isinstance(spec, dict):
        raise ForeignObjectError(
            f"{obj.get('kind', 'object')} {metadata.get('name')!r}: annotation "
            f"{ORIGINAL_SPEC_ANNOTATION} does not hold an object spec"
        )
    return spec


@dataclass(frozen=True, kw_only=True)
class Start:
    """What a builder starts from."""

    metadata: dict[str, Any]
    """The metadata to write."""
    spec: dict[str, Any] | None
    """A copy of the current spec to change, or None to build the spec from scratch."""
    original: dict[str, Any] | None
    """The spec before adoption (what the user wrote), or None when the operator creates it."""


def starting_point(
    *, existing: Mapping[str, Any] | None, name: str, namespace: str, release_name: str
) -> Start:
    """Where a builder starts: from scratch, or from an existing object that it adopts.

    With no ``existing`` object, or one this release created, the object is (re)built from
    scratch with the owner labels. Otherwise ``existing`` is adopted: its metadata is kept,
    the release label is added, and its spec is recorded in the annotation unless it already is.
    """
    if existing is not None:
        _check_release(existing, release_name=release_name)
    if existing is None or created_by_operator(existing):
        created: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, RELEASE_LABEL: release_name},
        }
        return Start(metadata=created, spec=None, original=None)

    metadata: dict[str, Any] = {
        key: copy.deepcopy(value)
        for key, value in existing.get("metadata", {}).items()
        if key not in SERVER_METADATA
    }
    spec = copy.deepcopy(dict(existing.get("spec") or {}))
    original = recorded_original(existing)
    if original is None:
        original = copy.deepcopy(spec)
        annotations = dict(metadata.get("annotations") or {})
        annotations[ORIGINAL_SPEC_ANNOTATION] = json.dumps(
            spec, sort_keys=True, separators=(",", ":")
        )
        metadata["annotations"] = annotations
    metadata["labels"] = dict(metadata.get("labels") or {}) | {RELEASE_LABEL: release_name}
    return Start(metadata=metadata, spec=spec, original=original)


def hand_over_patch(obj: Mapping[str, Any], *, release_name: str) -> dict[str, Any] | None:
    """The merge patch that hands ``obj`` over at the end of a release; None: nothing to do.

    A release that completed leaves its routing to whoever comes next: the owner labels go
    (an object the operator created becomes a plain object the next release adopts), and so
    does the recorded original, so that no later abort restores routing from before this
    release. The routes and subsets themselves stay exactly as they are.
    """
    metadata = obj.get("metadata", {})
    labels = metadata.get("labels") or {}
    if labels.get(RELEASE_LABEL) != release_name:
        return None  # someone else's, or already handed over
    patch: dict[str, Any] = {"labels": {RELEASE_LABEL: None}}
    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
        patch["labels"][MANAGED_BY_LABEL] = None
    if ORIGINAL_SPEC_ANNOTATION in (metadata.get("annotations") or {}):
        patch["annotations"] = {ORIGINAL_SPEC_ANNOTATION: None}
    return {"metadata": patch}


def _check_release(obj: Mapping[str, Any], *, release_name: str) -> None:
    metadata = obj.get("metadata", {})
    owner = (metadata.get("labels") or {}).get(RELEASE_LABEL)
    if owner is not None and owner != release_name:
        raise ForeignObjectError(
            f"{obj.get('kind', 'object')} {metadata.get('name')!r} belongs to release {owner!r}, "
            f"not {release_name!r}: one Service can be in one release at a time"
        )
