"""Sticky canary sessions (``traffic.sessionAffinity``), as Flagger's ``sessionAffinity`` offers them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, JsonValue

from istio_canary.models._base import ApiModel

__all__ = [
    "AFFINITY_NEEDS_CANARY",
    "AFFINITY_RULE",
    "COOKIE_NAME",
    "MAX_COOKIE_NAME",
    "MAX_SESSION_SECONDS",
    "SessionAffinity",
    "check_strategy",
]

# A cookie name is an RFC 6265 token (RFC 9110 tchar), the same characters as a match rule's cookie.
COOKIE_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
MAX_COOKIE_NAME = 64
MAX_SESSION_SECONDS = 7 * 24 * 3600
AFFINITY_NEEDS_CANARY = (
    "traffic.sessionAffinity keeps clients on a canary that the weight chose: "
    "it needs strategy Canary (BlueGreen and Mirror send no client to the canary by weight)"
)
# The CEL rule on the spec (a CanaryReleaseSpec rule: it reads traffic and strategy).
AFFINITY_RULE: JsonValue = {
    "rule": "!has(self.traffic) || !has(self.traffic.sessionAffinity) || "
    "(has(self.strategy) ? self.strategy : 'Canary') == 'Canary'",
    "message": AFFINITY_NEEDS_CANARY,
}


class SessionAffinity(ApiModel):
    """Sticky canary sessions: a client the weight sends to the canary gets a cookie that keeps it there."""

    cookie_name: Annotated[str, Field(min_length=1, max_length=MAX_COOKIE_NAME, pattern=COOKIE_NAME)]
    """Name of the cookie Envoy sets on the canary's responses and matches on later requests."""
    max_age: Annotated[int, Field(ge=1, le=MAX_SESSION_SECONDS)] = 86400
    """Seconds the cookie lives (its Max-Age); the release removing the canary's routes ends it sooner."""


def check_strategy(affinity: SessionAffinity | None, *, canary: bool) -> None:
    """Raise ValueError for session affinity under a strategy other than Canary (the CEL rule's twin)."""
    if affinity is not None and not canary:
        raise ValueError(AFFINITY_NEEDS_CANARY)
