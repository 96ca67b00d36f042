"""Match rules become HTTPMatchRequests that match exactly the requests the rule describes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import re2
from hypothesis import given
from hypothesis import strategies as st
from istio_canary.errors import RoutingError
from istio_canary.istio.match import check_regex, cookie_regex, escape_regex, match_requests
from istio_canary.models import CookieMatch, MatchRule, OperatingSystem, StringMatch

USER_AGENTS: dict[OperatingSystem, list[str]] = {
    OperatingSystem.WINDOWS: [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36"
        ),
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    ],
    OperatingSystem.MACOS: [
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.1 Safari/605.1.15"
        ),
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.2; rv:121.0) Gecko/20100101 Firefox/121.0",
    ],
    OperatingSystem.LINUX: [
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    ],
    OperatingSystem.ANDROID: [
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.6099.144 Mobile Safari/537.36"
        ),
        (
            "Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K) AppleWebkit/534.30 "
            "(KHTML, like Gecko) Version/4.0 Mobile Safari/534.30"
        ),
    ],
    OperatingSystem.IOS: [
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1"
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1"
        ),
    ],
}


def _string_matches(match: Mapping[str, str], value: str) -> bool:
    if "exact" in match:
        return value == match["exact"]
    if "prefix" in match:
        return value.startswith(match["prefix"])
    # Envoy's safe_regex matches the whole value.
    return re2.fullmatch(match["regex"], value) is not None


def istio_matches(
    request: Mapping[str, Any], *, headers: Mapping[str, str], uri: str = "/"
) -> bool:
    """Whether one HTTPMatchRequest matches a request, as Istio documents the fields used here."""
    for name, match in (request.get("headers") or {}).items():
        if name not in headers or not _string_matches(match, headers[name]):
            return False
    for name, match in (request.get("withoutHeaders") or {}).items():
        if name in headers and _string_matches(match, headers[name]):
            return False
    return "uri" not in request or _string_matches(request["uri"], uri)


def any_matches(requests: list[dict[str, Any]], **request: Any) -> bool:
    return any(istio_matches(entry, **request) for entry in requests)


def cookie_rule(name: str, **value: str) -> CookieMatch:
    return CookieMatch(name=name, value=StringMatch(**value))


def test_header_conditions_are_translated_as_written() -> None:
    rule = MatchRule(
        headers={"end-user": StringMatch(exact="jason"), "x-tier": StringMatch(prefix="gold")},
        uri=StringMatch(regex="/api/v[0-9]+/.*"),
    )

    assert match_requests(rule, path="traffic.match[0]") == [
        {
            "headers": {"end-user": {"exact": "jason"}, "x-tier": {"prefix": "gold"}},
            "uri": {"regex": "/api/v[0-9]+/.*"},
        }
    ]


@pytest.mark.parametrize(
    "header",
    [
        "canary=yes",
        "a=1; canary=yes",
        "canary=yes; b=2",
        "a=1; canary=yes; b=2",
        "a=1;canary=yes;b=2",
    ],
)
def test_cookie_rule_matches_the_cookie_among_several(header: str) -> None:
    pattern = cookie_regex(cookie_rule("canary", exact="yes"), path="traffic.match[0].cookie")

    assert re2.fullmatch(pattern, header)


@pytest.mark.parametrize(
    "header",
    [
        "xcanary=yes",
        "a=1; xcanary=yes; b=2",
        "canary=yess",
        "canary=no; b=yes",
        "canaryzyes",
        "a=canary=yes",
    ],
)
def test_cookie_rule_does_not_match_a_similar_cookie(header: str) -> None:
    pattern = cookie_regex(cookie_rule("canary", exact="yes"), path="traffic.match[0].cookie")

    assert not re2.fullmatch(pattern, header)


def test_cookie_name_and_value_are_escaped() -> None:
    pattern = cookie_regex(cookie_rule("a.b", exact="1+1 (x)"), path="p")

    assert re2.fullmatch(pattern, "z=0; a.b=1+1 (x); y=2")
    assert not re2.fullmatch(pattern, "axb=1+1 (x)")
    assert not re2.fullmatch(pattern, "a.b=11 x")


def test_cookie_prefix_matches_values_that_start_with_it_and_stays_inside_the_cookie() -> None:
    pattern = cookie_regex(cookie_rule("group", prefix="beta."), path="p")

    assert re2.fullmatch(pattern, "a=1; group=beta.7; b=2")
    assert not re2.fullmatch(pattern, "group=alpha; b=beta.7")
    assert not re2.fullmatch(pattern, "group=betaX7")


def test_cookie_regex_value_is_used_inside_the_cookie() -> None:
    pattern = cookie_regex(cookie_rule("uid", regex="[0-9]*[02468]"), path="p")

    assert re2.fullmatch(pattern, "a=1; uid=1234; b=2")
    assert not re2.fullmatch(pattern, "a=1; uid=1235; b=2")


@given(
    before=st.lists(st.from_regex(r"[a-z]{1,6}=[a-z0-9]{0,6}", fullmatch=True), max_size=3),
    after=st.lists(st.from_regex(r"[a-z]{1,6}=[a-z0-9]{0,6}", fullmatch=True), max_size=3),
    value=st.text(alphabet=st.characters(blacklist_characters=";", codec="ascii"), max_size=12),
)
def test_cookie_rule_finds_any_exact_value_wherever_the_cookie_sits(
    before: list[str], after: list[str], value: str
) -> None:
    pattern = cookie_regex(cookie_rule("Canary", exact=value), path="p")
    header = "; ".join([*before, f"Canary={value}", *after])

    assert re2.fullmatch(pattern, header)


def test_cookie_rule_becomes_a_regex_on_the_cookie_header() -> None:
    rule = MatchRule(cookie=cookie_rule("canary", exact="yes"))

    [request] = match_requests(rule, path="traffic.match[0]")

    assert list(request) == ["headers"]
    assert list(request["headers"]) == ["cookie"]
    assert any_matches([request], headers={"cookie": "a=1; canary=yes; b=2"})


def test_cookie_rule_and_cookie_header_together_are_rejected() -> None:
    rule = MatchRule(
        headers={"cookie": StringMatch(prefix="a")}, cookie=cookie_rule("c", exact="1")
    )

    with pytest.raises(RoutingError, match=r"traffic\.match\[2\]: .*headers\.cookie or cookie"):
        match_requests(rule, path="traffic.match[2]")


def test_os_rule_and_user_agent_header_together_are_rejected() -> None:
    rule = MatchRule(headers={"user-agent": StringMatch(prefix="curl")}, os=[OperatingSystem.IOS])

    with pytest.raises(RoutingError, match="user-agent or os"):
        match_requests(rule, path="traffic.match[0]")


@pytest.mark.parametrize("system", list(OperatingSystem))
def test_os_rule_matches_real_user_agents_of_that_os_only(system: OperatingSystem) -> None:
    requests = match_requests(MatchRule(os=[system]), path="traffic.match[0]")

    for other, agents in USER_AGENTS.items():
        for agent in agents:
            assert any_matches(requests, headers={"user-agent": agent}) == (other is system), (
                other,
                agent,
            )


def test_linux_rule_does_not_match_an_android_user_agent() -> None:
    requests = match_requests(MatchRule(os=[OperatingSystem.LINUX]), path="traffic.match[0]")
    android = USER_AGENTS[OperatingSystem.ANDROID][0]

    assert "Linux" in android
    assert not any_matches(requests, headers={"user-agent": android})
    assert requests[0]["withoutHeaders"] == {"user-agent": {"regex": ".*Android.*"}}


def test_several_oses_are_one_request_each_anded_with_the_other_conditions() -> None:
    rule = MatchRule(
        headers={"end-user": StringMatch(exact="jason")},
        uri=StringMatch(prefix="/api"),
        os=[OperatingSystem.MACOS, OperatingSystem.WINDOWS],
    )

    requests = match_requests(rule, path="traffic.match[0]")

    assert len(requests) == 2
    assert all(r["headers"]["end-user"] == {"exact": "jason"} for r in requests)
    assert all(r["uri"] == {"prefix": "/api"} for r in requests)
    windows = USER_AGENTS[OperatingSystem.WINDOWS][0]
    assert any_matches(requests, headers={"user-agent": windows, "end-user": "jason"}, uri="/api/x")
    assert not any_matches(
        requests, headers={"user-agent": windows, "end-user": "bob"}, uri="/api/x"
    )
    assert not any_matches(
        requests, headers={"user-agent": windows, "end-user": "jason"}, uri="/web"
    )


def test_os_order_and_repeats_do_not_change_the_output() -> None:
    one = MatchRule(os=[OperatingSystem.IOS, OperatingSystem.WINDOWS, OperatingSystem.IOS])
    other = MatchRule(os=[OperatingSystem.WINDOWS, OperatingSystem.IOS])

    assert match_requests(one, path="p") == match_requests(other, path="p")


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        (
            MatchRule(headers={"end-user": StringMatch(regex="(jason")}),
            "traffic.match[3].headers.end-user.regex",
        ),
        (MatchRule(uri=StringMatch(regex="/a[")), "traffic.match[3].uri.regex"),
        (MatchRule(cookie=cookie_rule("c", regex="x(?=y)")), "traffic.match[3].cookie.value.regex"),
        (MatchRule(headers={"x": StringMatch(regex=r"(a)\1")}), "traffic.match[3].headers.x.regex"),
    ],
)
def test_invalid_regex_is_rejected_with_the_field_path(rule: MatchRule, path: str) -> None:
    with pytest.raises(RoutingError) as caught:
        match_requests(rule, path="traffic.match[3]")

    assert str(caught.value).startswith(path + ": ")


def test_invalid_regex_message_says_what_is_wrong() -> None:
    with pytest.raises(
        RoutingError, match=r"^traffic\.match\[0\]\.headers\.end-user\.regex: missing \)"
    ):
        check_regex("(jason", path="traffic.match[0].headers.end-user.regex")


@given(st.text(max_size=30))
def test_escaped_text_matches_exactly_itself(text: str) -> None:
    pattern = escape_regex(text)

    assert re2.fullmatch(pattern, text)
    assert not re2.fullmatch(pattern, text + "x")
