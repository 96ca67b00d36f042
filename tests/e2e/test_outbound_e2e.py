"""Issue 20: the Prometheus adapter against real HTTP servers on loopback, under the outbound policy.

Resolve, check, connect to the checked address; redirects re-checked; answers bounded in size and
time; errors that carry a status code and fixed words, never what the server wrote.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from istio_canary import errors, outbound
from istio_canary.analysis.egress import Egress, Resolver
from istio_canary.analysis.prometheus import PrometheusMetrics

from tests.e2e.loopback import Answer, LoopbackServer

pytestmark = pytest.mark.e2e

SECRET = "s3cr3t-admin-token-4f1c"
EMPTY_RESULT = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()


@pytest.fixture
def admin_page() -> Iterator[LoopbackServer]:
    """An internal endpoint whose 403 page holds a token, as in the issue."""
    page = f"<h1>403</h1><p>use Authorization: Bearer {SECRET}</p>".encode()
    with LoopbackServer(lambda _: Answer(403, page, {"X-Admin-Token": SECRET})) as server:
        yield server


@pytest.fixture
def prometheus_like() -> Iterator[LoopbackServer]:
    with LoopbackServer(lambda _: Answer(200, EMPTY_RESULT, {"Content-Type": "application/json"})) as server:
        yield server


def egress(*prefixes: str, resolve: str = "") -> Egress:
    policy = outbound.OutboundPolicy.build(allow_release_prometheus_urls=True, allowed_url_prefixes=prefixes)
    return Egress(policy=policy, resolver=Resolver.from_text(resolve))


def counts(url: str, egress_: Egress, *, timeout: float = 2, credentials: outbound.Credentials | None = None) -> object:
    metrics = PrometheusMetrics(url, egress=egress_, timeout_seconds=timeout, credentials=credentials)
    return metrics.version_counts(namespace="bookinfo", service="reviews", window_seconds=60)


def test_a_403_page_holding_a_token_comes_back_as_answered_http_403_and_nothing_more(
    admin_page: LoopbackServer,
) -> None:
    url = admin_page.url("/internal/admin")

    with pytest.raises(errors.MetricsUnavailableError) as unavailable:
        counts(url, egress(admin_page.url("/")))

    assert str(unavailable.value) == f"Prometheus at {url} answered HTTP 403"
    # No cause a traceback would print (its text could quote the server).
    assert unavailable.value.__cause__ is None and unavailable.value.__suppress_context__
    assert len(admin_page.seen) == 1


@pytest.mark.parametrize(
    "answer",
    [
        Answer(200, f"token={SECRET}".encode()),
        Answer(200, json.dumps({"status": "error", "error": SECRET}).encode()),
        Answer(200, json.dumps({"status": "success", "data": {"result": SECRET}}).encode()),
        Answer(500, SECRET.encode()),
    ],
    ids=["not-json", "prometheus-error", "result-not-a-list", "http-500"],
)
def test_an_answer_that_is_no_query_result_is_reported_without_its_text(answer: Answer) -> None:
    with LoopbackServer(lambda _: answer) as server, pytest.raises(errors.MetricsUnavailableError) as unavailable:
        counts(server.url(), egress(server.url("/")))

    assert SECRET not in str(unavailable.value)
    assert str(unavailable.value).endswith(
        ("answered HTTP 500", "is not a Prometheus query result", "is not a query result")
    )


def test_the_connection_goes_to_the_checked_address_and_the_host_header_names_the_host(
    prometheus_like: LoopbackServer,
) -> None:
    url = prometheus_like.url(host="prometheus.team-a.test")

    assert counts(url, egress(url + "/", resolve="prometheus.team-a.test=127.0.0.1")) == {}

    assert {seen.headers["host"] for seen in prometheus_like.seen} == {f"prometheus.team-a.test:{prometheus_like.port}"}


def test_a_name_that_resolves_to_a_link_local_address_is_refused_without_connecting() -> None:
    url = "http://metadata.attacker.test:80/latest/meta-data"
    started = time.monotonic()

    with pytest.raises(
        errors.OutboundRefusedError, match=re.escape("resolves to 169.254.169.254, a link-local address")
    ):
        counts(
            url, egress("http://metadata.attacker.test/", resolve="metadata.attacker.test=169.254.169.254"), timeout=5
        )

    # A connection attempt to 169.254.169.254 would wait for the 5 s timeout.
    assert time.monotonic() - started < 1


def redirecting(location: str) -> Answer:
    return Answer(302, b"", {"Location": location})


def test_a_redirect_to_a_name_that_resolves_to_the_metadata_address_is_not_followed() -> None:
    target = "http://metadata.attacker.test/latest/meta-data/iam/security-credentials/"
    with LoopbackServer(lambda _: redirecting(target)) as server:
        policy = egress(
            server.url("/"), "http://metadata.attacker.test/", resolve="metadata.attacker.test=169.254.169.254"
        )
        with pytest.raises(
            errors.OutboundRefusedError, match=re.escape("metadata.attacker.test resolves to 169.254.169.254")
        ):
            counts(server.url(), policy)


def test_a_redirect_outside_the_allowed_prefixes_is_not_followed_and_its_target_sees_nothing(
    prometheus_like: LoopbackServer,
) -> None:
    with (
        LoopbackServer(lambda seen: redirecting(prometheus_like.url(seen.path))) as server,
        pytest.raises(errors.OutboundRefusedError, match=r"a redirect to .* was not followed"),
    ):
        counts(server.url(), egress(server.url("/")))

    assert len(server.seen) == 1 and prometheus_like.seen == []


def test_a_redirect_inside_the_allowed_prefixes_is_followed_and_the_token_stays_with_its_host(
    prometheus_like: LoopbackServer,
) -> None:
    with LoopbackServer(lambda seen: redirecting(prometheus_like.url(seen.path))) as server:
        policy = egress(server.url("/"), prometheus_like.url("/"))
        assert counts(server.url(), policy, credentials=outbound.Credentials(token=SECRET)) == {}

    assert {s.headers.get("authorization") for s in server.seen} == {f"Bearer {SECRET}"}
    # requests drops Authorization when a redirect changes host or port.
    assert prometheus_like.seen and all("authorization" not in s.headers for s in prometheus_like.seen)


def test_more_than_three_redirects_are_not_followed() -> None:
    with (
        LoopbackServer(lambda seen: redirecting(seen.path + "x")) as server,
        pytest.raises(errors.MetricsUnavailableError, match="redirected more than 3 times"),
    ):
        counts(server.url(), egress(server.url("/")))

    assert len(server.seen) == 4


def test_an_answer_longer_than_a_mebibyte_is_refused() -> None:
    with (
        LoopbackServer(lambda _: Answer(200, b"[" + b" " * (1024 * 1024) + b"]")) as server,
        pytest.raises(errors.MetricsUnavailableError, match="answered more than 1024 KiB"),
    ):
        counts(server.url(), egress(server.url("/")))


def test_a_server_that_drips_its_answer_is_cut_at_the_deadline() -> None:
    with LoopbackServer(lambda _: Answer(drip_seconds=0.2)) as server:
        started = time.monotonic()
        with pytest.raises(errors.MetricsUnavailableError, match="did not answer within 1 s"):
            counts(server.url(), egress(server.url("/")), timeout=1)

    # Each byte arrives well within the 1 s read timeout: only the deadline ends the request.
    assert time.monotonic() - started < 2


def test_no_proxy_from_the_environment_is_used(
    prometheus_like: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LoopbackServer(lambda _: Answer(200, EMPTY_RESULT)) as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url())
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert counts(prometheus_like.url(), egress(prometheus_like.url("/"))) == {}

    assert proxy.seen == [] and prometheus_like.seen


def test_a_fixed_resolver_answer_is_host_equals_address() -> None:
    assert Resolver.from_text(" A.test=127.0.0.1 , b.test=::1").fixed == (("a.test", "127.0.0.1"), ("b.test", "::1"))
    with pytest.raises(ValueError, match="not host=address"):
        Resolver.from_text("a.test")

