"""Istio's HTTPMatchRequest, evaluated the way Envoy evaluates what Istio generates from it.

Pure: no I/O, no clock, no randomness. Points where Envoy differs from what one might guess
are kept on purpose, because the operator must work against the real thing:

- A ``withoutHeaders`` condition on a header the request does not carry does *not* match
  (Envoy's ``invert_match`` needs the header present; istio/istio#50988), except the
  presence form ``{}``, which then means "header absent".
- An empty StringMatch and ``regex: "*"`` mean "header present" (istio/istio#20629).
- ``uri.prefix`` looks at the whole ``:path`` including the query string; ``exact`` and
  ``regex`` look at the path with the query string removed (Envoy's RouteMatch).
- Regexes are RE2 and must match the whole value.
"""

from __future__ import annotations

import dataclasses
import functools
import urllib.parse
from collections.abc import Mapping
from typing import Any

import re2

__all__ = ["Request", "compiled_regex", "matches_any", "matches_request", "string_matches"]

JsonDict = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Request:
    """One HTTP request as the client's sidecar sees it on the way out.

    ``host`` is what the client dialled (``reviews``, ``reviews.bookinfo`` or a FQDN), resolved
    relative to ``namespace``, the client's namespace. Header names are case-insensitive.
    """

    host: str
    namespace: str
    port: int | None = None
    path: str = "/"
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    method: str = "GET"
    scheme: str = "http"
    source_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    @property
    def path_without_query(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def query_params(self) -> dict[str, str]:
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        return dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


@functools.lru_cache(maxsize=1024)
def compiled_regex(pattern: str) -> Any:
    """Compile once; ``None`` for a pattern RE2 refuses.

    Istio's webhook would reject such a VirtualService; without the webhook the object is
    stored, and the route can then never match, which is the safest reading.
    """
    try:
        return re2.compile(pattern)
    except re2.error:
        return None


def string_matches(match: JsonDict, value: str, *, ignore_case: bool = False) -> bool:
    """Whether ``value`` satisfies one StringMatch (``exact`` | ``prefix`` | ``regex``)."""
    if "exact" in match:
        expected = str(match["exact"])
        return value.lower() == expected.lower() if ignore_case else value == expected
    if "prefix" in match:
        prefix = str(match["prefix"])
        return value.lower().startswith(prefix.lower()) if ignore_case else value.startswith(prefix)
    if "regex" in match:
        compiled = compiled_regex(str(match["regex"]))
        return compiled is not None and compiled.fullmatch(value) is not None
    # An empty StringMatch: only presence was asked for, and the caller has a value.
    return True


def _is_presence_match(match: JsonDict | None) -> bool:
    return (
        not match
        or match.get("regex") == "*"
        or not any(key in match for key in ("exact", "prefix", "regex"))
    )


def _header_matches(match: JsonDict | None, value: str | None, *, inverted: bool) -> bool:
    if value is None:
        # Envoy: a missing header satisfies only an inverted presence matcher.
        return inverted and _is_presence_match(match)
    if _is_presence_match(match):
        return not inverted
    assert match is not None  # a presence match covers None
    return string_matches(match, value) != inverted


def _uri_matches(match: JsonDict, request: Request, *, ignore_case: bool) -> bool:
    if "prefix" in match:
        return string_matches(match, request.path, ignore_case=ignore_case)
    # Envoy applies no case folding to regexes.
    fold = ignore_case and "regex" not in match
    return string_matches(match, request.path_without_query, ignore_case=fold)


def matches_request(match: JsonDict, request: Request) -> bool:
    """Whether every condition of one HTTPMatchRequest holds for ``request`` (AND)."""
    gateways = match.get("gateways")
    if gateways and "mesh" not in gateways:
        return False
    if "port" in match and match["port"] is not None and int(match["port"]) != request.port:
        return False
    if "uri" in match and not _uri_matches(
        match["uri"], request, ignore_case=bool(match.get("ignoreUriCase"))
    ):
        return False
    pseudo_headers = {
        "method": request.method,
        "scheme": request.scheme,
        "authority": request.header("host") or request.host,
    }
    for field, actual in pseudo_headers.items():
        if field in match and not _header_matches(match[field], actual, inverted=False):
            return False
    for name, header_match in (match.get("headers") or {}).items():
        if not _header_matches(header_match, request.header(name), inverted=False):
            return False
    for name, header_match in (match.get("withoutHeaders") or {}).items():
        if not _header_matches(header_match, request.header(name), inverted=True):
            return False
    params = request.query_params
    for name, param_match in (match.get("queryParams") or {}).items():
        if not _header_matches(param_match, params.get(name), inverted=False):
            return False
    if "sourceNamespace" in match and match["sourceNamespace"] != request.namespace:
        return False
    source_labels = match.get("sourceLabels") or {}
    return all(request.source_labels.get(key) == value for key, value in source_labels.items())


def matches_any(matches: list[JsonDict] | None, request: Request) -> bool:
    """Whether a route's ``match`` list accepts the request: entries are ORed, none means all."""
    if not matches:
        return True
    return any(matches_request(match, request) for match in matches)
