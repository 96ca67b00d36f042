"""Response headers the mesh adds on the way back (a Set-Cookie for sticky sessions). Pure.

Two readings, one per routing source:

- Envoy's (istiod's output): ``response_headers_to_add`` of the chosen weighted cluster, then of
  the route, then of the virtual host, as Envoy applies them by default (the most specific
  first, so a less specific ``OVERWRITE`` wins). istiod writes a VirtualService destination's
  ``headers.response`` on its weighted cluster (or on the route when it is the only destination)
  and a route's on the route.
- Istio's (the simulator's own reading of a VirtualService): the destination's
  ``headers.response`` and the route's, ``set`` overwriting, ``add`` appending, ``remove``.

A header list is a tuple of (name, value) in the order the client would see them; names keep
their case, and compare case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["Headers", "apply", "envoy_response_headers", "istio_response_headers", "values"]

JsonDict = Mapping[str, Any]
Headers = tuple[tuple[str, str], ...]

_APPEND = "APPEND_IF_EXISTS_OR_ADD"
_OVERWRITE = "OVERWRITE_IF_EXISTS_OR_ADD"
_ADD_IF_ABSENT = "ADD_IF_ABSENT"
_OVERWRITE_IF_EXISTS = "OVERWRITE_IF_EXISTS"


def values(headers: Headers, name: str) -> list[str]:
    """Every value of ``name`` (case-insensitive), in order."""
    wanted = name.lower()
    return [value for key, value in headers if key.lower() == wanted]


def apply(headers: Headers, *, name: str, value: str, action: str) -> Headers:
    """One HeaderValueOption applied to ``headers``, as Envoy's ``append_action`` says."""
    present = bool(values(headers, name))
    if action == _ADD_IF_ABSENT and present:
        return headers
    if action in (_OVERWRITE, _OVERWRITE_IF_EXISTS):
        if action == _OVERWRITE_IF_EXISTS and not present:
            return headers
        headers = tuple((key, old) for key, old in headers if key.lower() != name.lower())
    return (*headers, (name, value))


def _envoy_options(options: Iterable[JsonDict], headers: Headers) -> Headers:
    for option in options:
        header = option.get("header") or {}
        action = str(option.get("appendAction") or _APPEND)
        if option.get("append") is False:  # the deprecated boolean, still honoured by Envoy
            action = _OVERWRITE
        headers = apply(headers, name=str(header.get("key", "")), value=str(header.get("value", "")), action=action)
    return headers


def envoy_response_headers(
    *, cluster: str | None, action: JsonDict, route_entry: JsonDict, vhost: JsonDict | None
) -> Headers:
    """What Envoy adds to the response of a request that ``route_entry`` sent to ``cluster``."""
    weighted = (action.get("weightedClusters") or {}).get("clusters") or ()
    chosen: JsonDict = next((c for c in weighted if c.get("name") == cluster), {})
    headers: Headers = ()
    for level in (chosen, route_entry, vhost or {}):
        headers = _envoy_options(level.get("responseHeadersToAdd") or (), headers)
        removed = {str(name).lower() for name in level.get("responseHeadersToRemove") or ()}
        headers = tuple((key, value) for key, value in headers if key.lower() not in removed)
    return headers


def _istio_operations(operations: JsonDict, headers: Headers) -> Headers:
    for name, value in (operations.get("set") or {}).items():
        headers = apply(headers, name=str(name), value=str(value), action=_OVERWRITE)
    for name, value in (operations.get("add") or {}).items():
        headers = apply(headers, name=str(name), value=str(value), action=_APPEND)
    removed = {str(name).lower() for name in operations.get("remove") or ()}
    return tuple((key, value) for key, value in headers if key.lower() not in removed)


def istio_response_headers(*, destination: JsonDict, http_route: JsonDict) -> Headers:
    """What a VirtualService says to add to a response: the destination's, then the route's."""
    headers: Headers = ()
    levels: Sequence[JsonDict] = (destination, http_route)
    for level in levels:
        headers = _istio_operations((level.get("headers") or {}).get("response") or {}, headers)
    return headers
