"""Envoy's RouteMatch, evaluated as Envoy's router does. Pure: no I/O, no clock, no randomness.

This reads the route configuration istiod generated (protojson of
``envoy.config.route.v3.RouteMatch``), not Istio's VirtualService, so Istio's translation
(``withoutHeaders`` -> ``invert_match`` with ``treat_missing_header_as_empty``, ``regex: "*"``
-> ``present_match``, ``ignoreUriCase`` -> ``case_sensitive: false``) is already applied and
not guessed here. Semantics follow Envoy's ``HeaderUtility::matchHeaders`` and RouteMatch docs:

- ``prefix`` looks at the whole ``:path`` including the query string; ``path``,
  ``path_separated_prefix`` and ``safe_regex`` at the path with the query string removed.
- A header the request lacks matches only a present-matcher that asks for absence (an
  inverted ``present_match: true``), unless ``treat_missing_header_as_empty``, which
  evaluates the matcher against "" (and then inverts).
- Regexes are RE2 and must match the whole value; a regex RE2 refuses never matches.
- A match field this module does not know never matches, rather than matching by mistake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshsim.matching import Request, compiled_regex

__all__ = ["header_matches", "route_matches", "string_matcher_matches"]

JsonDict = Mapping[str, Any]

_PATH_SPECIFIERS = ("prefix", "path", "safeRegex", "pathSeparatedPrefix")
_KNOWN_FIELDS = {*_PATH_SPECIFIERS, "caseSensitive", "headers", "queryParameters"}
# HeaderMatcher's older one-of fields, as StringMatcher keys
_LEGACY_HEADER_FIELDS = {
    "exactMatch": "exact",
    "prefixMatch": "prefix",
    "suffixMatch": "suffix",
    "containsMatch": "contains",
    "safeRegexMatch": "safeRegex",
}


def _regex_matches(regex: JsonDict, value: str) -> bool:
    compiled = compiled_regex(str(regex.get("regex", "")))
    return compiled is not None and compiled.fullmatch(value) is not None


def string_matcher_matches(matcher: JsonDict, value: str) -> bool:
    """One ``envoy.type.matcher.v3.StringMatcher`` (exact | prefix | suffix | contains | safeRegex)."""
    if "safeRegex" in matcher:
        return _regex_matches(matcher["safeRegex"], value)  # ignore_case does not apply to regexes
    fold = bool(matcher.get("ignoreCase"))
    subject = value.lower() if fold else value
    for kind in ("exact", "prefix", "suffix", "contains"):
        if kind in matcher:
            expected = str(matcher[kind]).lower() if fold else str(matcher[kind])
            if kind == "exact":
                return subject == expected
            if kind == "prefix":
                return subject.startswith(expected)
            if kind == "suffix":
                return subject.endswith(expected)
            return expected in subject
    return False  # a matcher kind we do not know


def _header_value(request: Request, name: str) -> str | None:
    pseudo = {
        ":authority": request.header("host") or request.host,
        ":method": request.method,
        ":scheme": request.scheme,
        ":path": request.path,
    }
    if name in pseudo:
        return pseudo[name]
    return request.header(name)


def _specifier(matcher: JsonDict) -> tuple[str, Any]:
    """("string", StringMatcher) | ("present", bool); no specifier means "present"."""
    if "stringMatch" in matcher:
        return "string", matcher["stringMatch"]
    for legacy, kind in _LEGACY_HEADER_FIELDS.items():
        if legacy in matcher:
            return "string", {kind: matcher[legacy]}
    if "rangeMatch" in matcher:
        return "range", matcher["rangeMatch"]
    return "present", bool(matcher.get("presentMatch", True))


def _specifier_matches(kind: str, spec: Any, value: str) -> bool:
    if kind == "string":
        return string_matcher_matches(spec, value)
    if kind == "range":
        try:
            number = int(value)
        except ValueError:
            return False
        return int(spec.get("start", 0)) <= number < int(spec.get("end", 0))
    return bool(spec)  # present_match on a header that is there


def header_matches(matcher: JsonDict, request: Request) -> bool:
    """One ``envoy.config.route.v3.HeaderMatcher``, as ``HeaderUtility::matchHeaders``."""
    kind, spec = _specifier(matcher)
    inverted = bool(matcher.get("invertMatch"))
    value = _header_value(request, str(matcher.get("name", "")).lower())
    if value is None:
        if not matcher.get("treatMissingHeaderAsEmpty"):
            return kind == "present" and (spec if inverted else not spec)
        value = ""
    return _specifier_matches(kind, spec, value) != inverted


def _query_matches(matcher: JsonDict, request: Request) -> bool:
    value = request.query_params.get(str(matcher.get("name", "")))
    if value is None:
        return False
    if "stringMatch" in matcher:
        return string_matcher_matches(matcher["stringMatch"], value)
    return bool(matcher.get("presentMatch", False))


def _path_matches(match: JsonDict, request: Request) -> bool:
    fold = match.get("caseSensitive", True) is False
    if "safeRegex" in match:
        return _regex_matches(match["safeRegex"], request.path_without_query)
    if "prefix" in match:
        path, expected = request.path, str(match["prefix"])
    elif "path" in match:
        path, expected = request.path_without_query, str(match["path"])
    elif "pathSeparatedPrefix" in match:
        path, expected = request.path_without_query, str(match["pathSeparatedPrefix"])
    else:
        return False  # no path specifier we know (a URI template, for one)
    if fold:
        path, expected = path.lower(), expected.lower()
    if "prefix" in match:
        return path.startswith(expected)
    if "path" in match:
        return path == expected
    return path == expected or path.startswith(expected.rstrip("/") + "/")


def route_matches(match: JsonDict, request: Request) -> bool:
    """Whether one ``envoy.config.route.v3.RouteMatch`` accepts ``request`` (all conditions hold)."""
    if set(match) - _KNOWN_FIELDS:
        return False
    if not _path_matches(match, request):
        return False
    if not all(header_matches(h, request) for h in match.get("headers") or ()):
        return False
    return all(_query_matches(q, request) for q in match.get("queryParameters") or ())
