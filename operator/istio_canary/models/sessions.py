"""Sticky canary sessions (``traffic.sessionAffinity``), as Flagger's ``sessionAffinity`` offers them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from istio_canary.models._base import ApiModel

__all__ = ["AFFINITY_NEEDS_CANARY", "COOKIE_NAME", "MAX_COOKIE_NAME", "MAX_SESSION_SECONDS", "SessionAffinity"]

# A cookie name is an RFC 6265 token (RFC 9110 tchar), the same characters as a match rule's cookie.
COOKIE_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
MAX_COOKIE_NAME = 64
MAX_SESSION_SECONDS = 7 * 24 * 3600
AFFINITY_NEEDS_CANARY = (
    "traffic.sessionAffinity keeps clients on a canary that the weight chose: "
    "it needs strategy Canary (BlueGreen and Mirror send no client to the canary by weight)"
)


class SessionAffinity(ApiModel):
    """Sticky canary sessions: a client the weight sends to the canary gets a cookie that keeps it there."""

    cookie_name: Annotated[str, Field(min_length=1, max_length=MAX_COOKIE_NAME, pattern=COOKIE_NAME)]
    """Name of the cookie Envoy sets on the canary's responses and matches on later requests."""
    max_age: Annotated[int, Field(ge=1, le=MAX_SESSION_SECONDS)] = 86400
    """Seconds the cookie lives (its Max-Age); the release removing the canary's routes ends it sooner."""
