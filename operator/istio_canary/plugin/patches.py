"""The patches each verb sends: pure, and validated locally where that is cheap.

Obvious mistakes (a weight of 130, a version the release does not have) are refused before
they reach the API server; the CRD's CEL rules stay the authority for everything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from istio_canary.models import Policy

__all__ = [
    "Body",
    "Patch",
    "PluginError",
    "abort_patch",
    "approve_patch",
    "describe_patch",
    "offline_patch",
    "pause_patch",
    "resume_patch",
    "set_weight_patch",
    "take_over_patch",
]

Body = Mapping[str, Any]
Patch = dict[str, Any]


class PluginError(Exception):
    """A request the plugin refuses or the API server rejected; its text is shown as is."""


def set_weight_patch(weight: int) -> Patch:
    if not 0 <= weight <= 100:
        raise PluginError(f"weight must be between 0 and 100, got {weight}")
    return {"spec": {"traffic": {"weight": weight}}}


def take_over_patch(release: Body, version: str) -> Patch:
    spec = release.get("spec", {})
    versions = (spec.get("stable", {}).get("version"), spec.get("canary", {}).get("version"))
    if version not in versions:
        raise PluginError(
            f"version {version!r} is neither stable ({versions[0]}) nor canary ({versions[1]})"
        )
    return {"spec": {"takeOver": version}}


def offline_patch(release: Body) -> Patch:
    if not release.get("spec", {}).get("takeOver"):
        raise PluginError(
            "offline needs a take over first: run `kubectl canary take-over NAME VERSION`"
        )
    return {"spec": {"offline": True}}


def approve_patch(release: Body) -> Patch:
    """Approves the gate the release waits at now, for the canary revision that runs now.

    Only what ``status.gate.approve`` says: an approval of another gate, or of another canary,
    would not count, so the plugin never writes one.
    """
    approve = (release.get("status", {}).get("gate") or {}).get("approve")
    if not approve:
        raise PluginError("the release waits for no approval now (status.gate.approve is empty)")
    return {"spec": {"approve": dict(approve)}}


def abort_patch() -> Patch:
    return {"spec": {"abort": True}}


def pause_patch() -> Patch:
    return {"spec": {"policy": Policy.PAUSED.value}}


def resume_patch() -> Patch:
    return {"spec": {"policy": Policy.WAIT_FOR_WORKLOAD_READY.value}}


def describe_patch(patch: Patch) -> str:
    """``traffic.weight=30``: the changed fields, for the one-line confirmation."""

    def walk(prefix: str, node: Any) -> list[str]:
        if isinstance(node, dict):
            return [item for key, value in node.items() for item in walk(f"{prefix}{key}.", value)]
        return [f"{prefix[:-1]}={json.dumps(node)}"]

    return ", ".join(walk("", patch.get("spec", {})))
