"""RFC 7386 JSON merge patches: the smallest patch that turns one object into another."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["merge_patch"]


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch from ``old`` to ``new`` (empty: they are equal).

    A merge patch merges nested objects and replaces lists whole, so a key that is gone must be
    sent as null, at every depth, or the stored value stays. ``new`` must hold no null values
    (a merge patch cannot set one).
    """
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        before = old.get(key)
        if before == value:
            continue
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch
