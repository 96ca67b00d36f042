"""Sticky canary sessions (``traffic.sessionAffinity``): a cookie that Istio sets and matches.

Two pieces, both present only while the plan has a ``sticky`` session (the canary has weight):

- in a weighted route, the canary's destination adds ``Set-Cookie: <name>=<value>; Max-Age=<s>;
  Path=/`` to its responses (``headers.response.add`` on the destination: istiod writes it on
  that weighted cluster alone, so only responses the canary served carry it);
- a route just before that weighted route matches the cookie inside the Cookie header and sends
  every such request to the canary.

So a client whose request the weight once sent to the canary stays on it at every later weight,
and a client without the cookie follows the weight. The value names the canary's version and
revision: a cookie from an earlier canary (or image) matches no route and follows the weight
again. Take over, abort and completion plan no session, so both pieces go with the next write.
"""

from __future__ import annotations

from typing import Any

from istio_canary.istio.match import cookie_regex
from istio_canary.istio.plan import RoutePlan, StickySession
from istio_canary.models import CookieMatch, StringMatch

__all__ = [
    "SET_COOKIE",
    "cookie_request",
    "cookie_value",
    "destination_headers",
    "entry_headers",
    "set_cookie",
]

SET_COOKIE = "Set-Cookie"


def cookie_value(*, canary_version: str, revision: str) -> str:
    """The cookie's value for one canary: its version and revision (RFC 6265 cookie-octets)."""
    return f"{canary_version}-{revision}"


def set_cookie(session: StickySession) -> str:
    """The Set-Cookie header value the canary's responses carry."""
    return f"{session.cookie_name}={session.value}; Max-Age={session.max_age}; Path=/"


def destination_headers(session: StickySession) -> dict[str, Any]:
    """The HTTPRouteDestination ``headers`` that make the canary's responses set the cookie."""
    return {"response": {"add": {SET_COOKIE: set_cookie(session)}}}


def cookie_request(session: StickySession) -> dict[str, Any]:
    """The HTTPMatchRequest that holds when the request carries the session's cookie.

    The Cookie header holds every cookie (``a=1; <name>=<value>; b=2``): a whole-value regex that
    finds this one among them, name and value escaped.
    """
    cookie = CookieMatch(name=session.cookie_name, value=StringMatch(exact=session.value))
    return {"headers": {"cookie": {"regex": cookie_regex(cookie, path="traffic.sessionAffinity")}}}


def entry_headers(plan: RoutePlan, version: str) -> dict[str, Any]:
    """What a weighted destination of ``version`` carries besides destination and weight: the
    cookie's headers for the canary while the plan has a session, else nothing."""
    if plan.sticky is None or version != plan.canary_version:
        return {}
    return {"headers": destination_headers(plan.sticky)}
