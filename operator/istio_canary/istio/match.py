"""Request-content rules (``traffic.match``) as Istio HTTPMatchRequests.

Istio's HTTPMatchRequest can say "header X matches", "header X does not match", "URI matches";
it has no cookie or operating-system matcher. A cookie becomes a regex on the ``cookie`` header
that finds the cookie among several, and an operating system becomes a regex on
``user-agent``. Regexes are RE2 with whole-value semantics (Envoy's ``safe_regex``), so every
regex is checked with RE2 here rather than failing later inside Envoy.
"""

from __future__ import annotations

from typing import Any

import re2

from istio_canary.errors import RoutingError
from istio_canary.models import CookieMatch, MatchRule, OperatingSystem, StringMatch

__all__ = ["OS_USER_AGENT", "check_regex", "cookie_regex", "escape_regex", "match_requests"]

# Whole-value regexes on User-Agent. macOS looks for "Macintosh", because iPhones and iPads say
# "like Mac OS X"; iPadOS in desktop mode also says "Macintosh" and counts as macOS, as it does
# for every server. Android user agents also say "Linux": the Linux rule excludes them with
# ``withoutHeaders`` (see _OS_EXCLUDES) because RE2 has no negative lookahead.
OS_USER_AGENT: dict[OperatingSystem, str] = {
    OperatingSystem.WINDOWS: ".*Windows.*",
    OperatingSystem.MACOS: ".*Macintosh.*",
    OperatingSystem.LINUX: ".*Linux.*",
    OperatingSystem.ANDROID: ".*Android.*",
    OperatingSystem.IOS: ".*(iPhone|iPad|iPod).*",
}
_OS_EXCLUDES: dict[OperatingSystem, str] = {
    OperatingSystem.LINUX: OS_USER_AGENT[OperatingSystem.ANDROID],
}

# The metacharacters of RE2 and of Go's regexp (Istio validates with Go): escaping exactly
# these keeps the pattern valid in both, unlike Python's re.escape, which also escapes spaces.
_REGEX_SPECIALS = frozenset("\\.+*?()|[]{}^$")

_OPTIONS = re2.Options()
# A bad user regex is reported as a RoutingError; RE2's own stderr logging would only be noise.
_OPTIONS.log_errors = False


def escape_regex(text: str) -> str:
    """``text`` as an RE2 pattern that matches exactly ``text``."""
    return "".join("\\" + char if char in _REGEX_SPECIALS else char for char in text)


def check_regex(pattern: str, *, path: str) -> str:
    """Return ``pattern`` if RE2 compiles it; otherwise raise a RoutingError naming ``path``."""
    try:
        re2.compile(pattern, _OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RoutingError(f"{path}: {reason}") from None
    return pattern


def cookie_regex(cookie: CookieMatch, *, path: str) -> str:
    """A whole-value regex on the ``cookie`` header that holds when ``cookie`` is among its cookies.

    The header looks like ``a=1; canary=yes; b=2``: the named cookie starts the header or
    follows a ``;``, and its value ends the header or is followed by a ``;``. The name is
    escaped, so ``canary`` never matches ``xcanary``. A regex value is used as written: it
    should not match ``;``, or it may reach into the next cookie.
    """
    value = cookie.value
    if value.exact is not None:
        value_pattern = escape_regex(value.exact)
    elif value.prefix is not None:
        value_pattern = escape_regex(value.prefix) + "[^;]*"
    else:
        assert value.regex is not None  # StringMatch holds exactly one of the three
        value_pattern = "(?:" + check_regex(value.regex, path=f"{path}.value.regex") + ")"
    return r"^(?:.*;\s*)?" + escape_regex(cookie.name) + "=" + value_pattern + "(?:;.*)?$"


def _string_match(match: StringMatch, *, path: str) -> dict[str, str]:
    if match.regex is not None:
        return {"regex": check_regex(match.regex, path=f"{path}.regex")}
    if match.prefix is not None:
        return {"prefix": match.prefix}
    assert match.exact is not None  # StringMatch holds exactly one of the three
    return {"exact": match.exact}


def match_requests(rule: MatchRule, *, path: str) -> list[dict[str, Any]]:
    """The HTTPMatchRequests that together express ``rule``; any one of them matching is a match.

    Conditions inside the rule are ANDed inside each request. Several operating systems are an
    OR, so they become one request per OS, each carrying the rule's other conditions.
    ``path`` names the rule in messages, e.g. ``traffic.match[0]``.
    """
    headers: dict[str, dict[str, str]] = {}
    for name in sorted(rule.headers):
        headers[name] = _string_match(rule.headers[name], path=f"{path}.headers.{name}")
    if rule.cookie is not None:
        if "cookie" in headers:
            raise RoutingError(
                f"{path}: set either headers.cookie or cookie, not both: "
                "both would be conditions on the one Cookie header"
            )
        headers["cookie"] = {"regex": cookie_regex(rule.cookie, path=f"{path}.cookie")}
    if rule.os and "user-agent" in headers:
        raise RoutingError(
            f"{path}: set either headers.user-agent or os, not both: "
            "os is a condition on the User-Agent header"
        )

    base: dict[str, Any] = {}
    if rule.uri is not None:
        base["uri"] = _string_match(rule.uri, path=f"{path}.uri")
    if not rule.os:
        return [_with_headers(base, headers)]

    requests = []
    # Sorted by the enum's order and deduplicated, so the output does not depend on how the
    # user ordered or repeated the list.
    for system in sorted(set(rule.os), key=list(OperatingSystem).index):
        request = _with_headers(base, headers | {"user-agent": {"regex": OS_USER_AGENT[system]}})
        if system in _OS_EXCLUDES:
            request["withoutHeaders"] = {"user-agent": {"regex": _OS_EXCLUDES[system]}}
        requests.append(request)
    return requests


def _with_headers(base: dict[str, Any], headers: dict[str, dict[str, str]]) -> dict[str, Any]:
    request = dict(base)
    if headers:
        request["headers"] = dict(sorted(headers.items()))
    return request
