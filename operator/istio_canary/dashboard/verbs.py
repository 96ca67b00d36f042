"""The dashboard's buttons as the kubectl plugin's patches: one field of the spec each. (pure)"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from istio_canary.plugin.patches import (
    Body,
    Patch,
    PluginError,
    abort_patch,
    offline_patch,
    pause_patch,
    resume_patch,
    set_weight_patch,
    take_over_patch,
)

__all__ = ["VERBS", "patch_for"]


def _weight(form: Mapping[str, Any]) -> int:
    value = form.get("weight")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PluginError("weight must be a whole number between 0 and 100")
    try:
        return int(value)
    except ValueError:
        raise PluginError("weight must be a whole number between 0 and 100") from None


def _version(form: Mapping[str, Any]) -> str:
    value = form.get("version")
    if not isinstance(value, str) or not value:
        raise PluginError("take over needs the version to send all traffic to")
    return value


VERBS: dict[str, Callable[[Body, Mapping[str, Any]], Patch]] = {
    "set-weight": lambda _release, form: set_weight_patch(_weight(form)),
    "take-over": lambda release, form: take_over_patch(release, _version(form)),
    "offline": lambda release, _form: offline_patch(release),
    "abort": lambda _release, _form: abort_patch(),
    "pause": lambda _release, _form: pause_patch(),
    "resume": lambda _release, _form: resume_patch(),
}
"""Verb -> (stored release, the request's JSON body) -> merge patch; named as the plugin's verbs."""


def patch_for(verb: str, release: Body, form: Mapping[str, Any]) -> Patch:
    """The patch of ``verb``; :class:`PluginError` for an unknown verb or a refused value."""
    build = VERBS.get(verb)
    if build is None:
        raise PluginError(f"unknown action {verb!r}")
    return build(release, form)
