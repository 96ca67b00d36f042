"""The outbound policy (issue 20): URL forms, prefixes, schemes, IP ranges, IPv6, redirects."""

from __future__ import annotations

import ipaddress
import re

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from istio_canary import errors, outbound
from istio_canary.models import AnalysisSpec
from istio_canary.outbound import OutboundPolicy, UrlPrefix, parse_url

OWN = "http://prometheus.istio-system:9090"


def team_policy(*prefixes: str, allow: bool = True, refused: tuple[str, ...] = ()) -> OutboundPolicy:
    return OutboundPolicy.build(
        prometheus_url=OWN,
        allow_release_prometheus_urls=allow,
        allowed_url_prefixes=prefixes,
        refused_networks=refused,
    )


# -- the form of a URL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://prometheus/", "must be http or https"),
        ("file:///etc/passwd", "must be http or https"),
        ("gopher://127.0.0.1:6379/", "must be http or https"),
        ("prometheus:9090", "must be http or https"),
        ("http://admin:hunter2@prometheus/", "user name or password"),
        ("http://token@prometheus/", "user name or password"),
        ("http://127.0.0.1:8080/internal/admin#", "fragment"),
        ("http://127.0.0.1:8080/internal/admin?x=", "query"),
        ("http://prom/a/../admin", ". or .. path segments"),
        ("http://prom/a/%2E%2e/admin", ". or .. path segments"),
        ("http://prom/a%2f..%2fadmin", ". or .. path segments"),
        ("http://prom/./x", ". or .. path segments"),
        ("http://prom\\@evil/", "characters a URL cannot hold"),
        ("http://prom /", "characters a URL cannot hold"),
        ("http://prométhée/", "characters a URL cannot hold"),
        ("http:///api", "no valid host"),
        ("http://[fe80::1%25eth0]:9090/", "no valid host"),
        ("http://prom:0/", "invalid port"),
        ("http://prom:65536/", "invalid port"),
        ("", "is empty"),
    ],
)
def test_a_url_that_is_no_plain_http_base_url_is_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(outbound.UrlFormError, match=problem):
        parse_url(url)


def test_a_url_is_normalised_so_that_spellings_of_one_place_compare_equal() -> None:
    assert parse_url("HTTP://Prometheus.Monitoring.:80") == parse_url("http://prometheus.monitoring/")
    assert parse_url("https://[0:0::1]:443/x") == parse_url("https://[::1]/x")
    assert str(parse_url("http://[::1]:9090")) == "http://[::1]:9090/"


@given(user=st.text(alphabet="abcxyz019-._~", min_size=1, max_size=10), host=st.sampled_from(["prom", "127.0.0.1"]))
def test_no_url_with_a_user_part_is_ever_accepted(user: str, host: str) -> None:
    with pytest.raises(outbound.UrlFormError):
        parse_url(f"http://{user}@{host}/")


def test_the_models_repeat_the_url_rules_and_auth_needs_a_url() -> None:
    with pytest.raises(pydantic.ValidationError, match="fragment"):
        AnalysisSpec.model_validate({"prometheusUrl": "http://127.0.0.1:8080/internal/admin#"})
    with pytest.raises(pydantic.ValidationError, match="prometheusAuth needs prometheusUrl"):
        AnalysisSpec.model_validate({"prometheusAuth": {"secretRef": {"name": "prom-token"}}})
    accepted = AnalysisSpec.model_validate(
        {"prometheusUrl": "https://prom.example/", "prometheusAuth": {"secretRef": {"name": "prom-token"}}}
    )
    assert accepted.prometheus_auth is not None and accepted.prometheus_auth.secret_ref is not None
    assert accepted.prometheus_auth.secret_ref.name == "prom-token"


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Authorization": "Bearer x"}, "may not be set: credentials come from a Secret"),
        ({"cookie": "a=b"}, "may not be set"),
        ({"X-Tenant": "a\r\nHost: evil"}, "String should match pattern"),
        ({"X Tenant": "a"}, "is not a header name"),
        ({f"X-{i}": "a" for i in range(5)}, "at most 4 items"),
    ],
)
def test_prometheus_headers_set_no_credentials_no_framing_and_no_line_breaks(
    headers: dict[str, str], refused: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=refused):
        AnalysisSpec.model_validate({"prometheusUrl": "https://prom.example/", "prometheusAuth": {"headers": headers}})
    kept = AnalysisSpec.model_validate(
        {"prometheusUrl": "https://prom.example/", "prometheusAuth": {"headers": {"X-Scope-OrgID": "team-a|team-b"}}}
    )
    assert kept.prometheus_auth is not None and kept.prometheus_auth.headers == {"X-Scope-OrgID": "team-a|team-b"}


def test_credentials_from_a_secrets_keys_and_a_ca_that_is_no_certificate() -> None:
    found = outbound.credentials_from({"ca.crt": "-----BEGIN CERTIFICATE-----\nx\n"}, where="Secret s")
    assert (found.token, found.username, found.ca_pem is not None) == (None, None, True)
    with pytest.raises(errors.CredentialsError, match=r"key ca\.crt of Secret s holds no PEM certificate"):
        outbound.credentials_from({"token": "t", "ca.crt": "not a certificate"}, where="Secret s")
    with pytest.raises(errors.CredentialsError, match="has none of the keys"):
        outbound.credentials_from({"other": "x"}, where="Secret s")


def test_credentials_never_show_in_their_repr() -> None:
    shown = repr(outbound.Credentials(token="s3cr3t", username="u", password="p4ss"))

    assert "s3cr3t" not in shown and "p4ss" not in shown


# -- prefixes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "url", "covered"),
    [
        ("https://prom.team-a.example/", "https://prom.team-a.example/", True),
        ("https://prom.team-a.example/", "https://prom.team-a.example:443/select/0", True),
        ("https://prom.team-a.example/", "https://PROM.team-a.example./", True),
        ("https://prom.team-a.example/", "http://prom.team-a.example/", False),  # scheme
        ("https://prom.team-a.example/", "https://prom.team-a.example:8443/", False),  # port
        ("https://prom.team-a.example/", "https://prom.team-a.example.evil.test/", False),  # host
        ("https://prom.team-a.example/", "https://evil.test/prom.team-a.example/", False),
        ("http://gateway/prometheus", "http://gateway/prometheus", True),
        ("http://gateway/prometheus", "http://gateway/prometheus/", True),
        ("http://gateway/prometheus/", "http://gateway/prometheus/team-a", True),
        ("http://gateway/prometheus", "http://gateway/prometheus-admin", False),  # whole segments
        ("http://gateway/prometheus", "http://gateway/", False),
        ("http://gateway/prometheus", "http://gateway/Prometheus", False),  # paths are case-sensitive
    ],
)
def test_a_prefix_covers_the_same_scheme_host_and_port_and_paths_under_it(
    prefix: str, url: str, covered: bool
) -> None:
    assert UrlPrefix.parse(prefix).covers(parse_url(url)) is covered


@given(segment=st.text(alphabet="abcdefghij-_~0123456789", min_size=1, max_size=20))
def test_a_prefix_covers_what_lies_below_it_and_never_a_sibling_that_starts_alike(segment: str) -> None:
    prefix = UrlPrefix.parse("http://gateway/prometheus")

    assert prefix.covers(parse_url(f"http://gateway/prometheus/{segment}"))
    assert not prefix.covers(parse_url(f"http://gateway/prometheus{segment}"))


# -- the policy ---------------------------------------------------------------------------------


def test_by_default_a_release_may_name_no_url_but_the_operators_own() -> None:
    policy = OutboundPolicy.build(prometheus_url=OWN)

    assert policy.check_release_prometheus_url(OWN + "/") == parse_url(OWN)
    with pytest.raises(errors.OutboundRefusedError, match="queries only its own Prometheus"):
        policy.check_release_prometheus_url("http://127.0.0.1:8080/internal/admin")
    with pytest.raises(errors.OutboundRefusedError, match="queries only its own Prometheus"):
        OutboundPolicy().check_release_prometheus_url("http://prometheus:9090")


def test_allowed_prefixes_do_nothing_until_release_urls_are_allowed() -> None:
    policy = team_policy("https://prom.team-a.example/", allow=False)

    with pytest.raises(errors.OutboundRefusedError, match="allowReleasePrometheusUrls"):
        policy.check_release_prometheus_url("https://prom.team-a.example/")


def test_with_release_urls_allowed_only_urls_under_an_allowed_prefix_pass() -> None:
    policy = team_policy("https://prom.team-a.example/", "http://gateway/prometheus/team-a")

    assert policy.check_release_prometheus_url("https://prom.team-a.example")
    assert policy.check_release_prometheus_url("http://gateway/prometheus/team-a/")
    for refused in ("http://gateway/prometheus/team-b", "http://169.254.169.254/", "https://kubernetes.default/"):
        with pytest.raises(errors.OutboundRefusedError, match="under no allowed URL prefix"):
            policy.check_release_prometheus_url(refused)


def test_the_policy_refuses_a_bad_form_before_comparing_prefixes() -> None:
    policy = team_policy("http://127.0.0.1:8080/")

    with pytest.raises(errors.OutboundRefusedError, match="fragment"):
        policy.check_release_prometheus_url("http://127.0.0.1:8080/internal/admin#")


def test_a_bad_flag_value_is_refused_when_the_policy_is_built() -> None:
    with pytest.raises(ValueError, match="allowed URL prefix"):
        OutboundPolicy.build(allowed_url_prefixes=["prom.example"])
    with pytest.raises(ValueError, match="not a CIDR"):
        OutboundPolicy.build(refused_networks=["10.0.0.0/33"])
    with pytest.raises(ValueError, match="--prometheus-url"):
        OutboundPolicy.build(prometheus_url="http://user:pass@prometheus:9090")


# -- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link-local"),
        ("169.254.0.1", "link-local"),
        ("169.254.255.255", "link-local"),
        ("fe80::1", "IPv6 link-local"),
        ("febf:ffff::1", "IPv6 link-local"),
        ("fd00:ec2::254", "AWS metadata"),
        ("100.100.100.200", "Alibaba Cloud"),
        ("::ffff:169.254.169.254", "link-local"),  # IPv4-mapped IPv6
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
    ],
)
def test_link_local_metadata_and_unspecified_addresses_are_always_refused(address: str, reason: str) -> None:
    with pytest.raises(errors.OutboundRefusedError, match=reason):
        team_policy().check_addresses(host="metadata.attacker.test", addresses=[address])


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.96.0.10",
        "192.168.1.5",
        "8.8.8.8",
        "::1",
        "2001:db8::1",
        "fd00:ec2::253",
        "169.253.255.255",
        "169.255.0.0",
    ],
)
def test_other_addresses_pass_unless_the_admin_refuses_their_network(address: str) -> None:
    assert team_policy().check_addresses(host="prom", addresses=[address]) == address


def test_the_admins_refused_networks_are_refused_too() -> None:
    policy = team_policy(refused=("10.96.0.0/12", "fd00::/8"))

    with pytest.raises(
        errors.OutboundRefusedError, match=re.escape("10.96.0.0/12, a network the cluster admin refused")
    ):
        policy.check_addresses(host="kubernetes.default", addresses=["10.96.0.1"])
    with pytest.raises(errors.OutboundRefusedError, match="fd00::/8"):
        policy.check_addresses(host="prom", addresses=["::ffff:10.0.0.1", "fd12::1"])
    assert policy.check_addresses(host="prom", addresses=["10.0.0.1"]) == "10.0.0.1"


def test_one_refused_address_among_several_refuses_the_name() -> None:
    with pytest.raises(errors.OutboundRefusedError, match=re.escape("resolves to 169.254.169.254")):
        team_policy().check_addresses(host="prom.team-a.example", addresses=["10.0.0.7", "169.254.169.254"])


def test_the_message_says_the_name_and_what_it_resolved_to() -> None:
    with pytest.raises(errors.OutboundRefusedError) as refused:
        team_policy().check_addresses(host="metadata.attacker.test", addresses=["169.254.169.254"])

    assert str(refused.value).startswith("metadata.attacker.test resolves to 169.254.169.254, a link-local address")


@given(st.integers(min_value=0, max_value=2**16 - 1))
def test_every_address_of_169_254_is_refused_in_every_spelling(low: int) -> None:
    v4 = ipaddress.IPv4Address((169 << 24) | (254 << 16) | low)
    spellings: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [
        v4,
        ipaddress.IPv6Address(f"::ffff:{v4}"),
        ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(v4)),
    ]

    for address in spellings:
        assert outbound.address_refusal(address) is not None, address


@given(st.integers(min_value=0, max_value=2**118 - 1))
def test_every_address_of_fe80_10_is_refused(low: int) -> None:
    assert outbound.address_refusal(ipaddress.IPv6Address((0xFE80 << 112) | low)) is not None


# -- redirects ----------------------------------------------------------------------------------


def test_a_redirect_inside_the_allowed_prefixes_is_followed_and_a_relative_one_is_resolved() -> None:
    policy = team_policy("http://gateway/prometheus/")
    current = "http://gateway/prometheus/api/v1/query?query=up"

    assert str(policy.check_redirect(current=current, location="/prometheus/v2/api/v1/query?query=up")) == (
        "http://gateway/prometheus/v2/api/v1/query?query=up"
    )
    assert policy.check_redirect(current=OWN + "/api/v1/query", location=OWN + "/prometheus/api/v1/query")


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "outside the operator's Prometheus"),
        ("http://gateway/admin/", "outside the operator's Prometheus"),
        ("/admin", "outside the operator's Prometheus"),
        ("http://attacker@gateway/prometheus/", "user name or password"),
        ("file:///etc/passwd", "must be http or https"),
        ("http://gateway/prometheus/../admin", ". or .. path segments"),
    ],
)
def test_a_redirect_to_a_refused_place_is_not_followed(location: str, reason: str) -> None:
    with pytest.raises(errors.OutboundRefusedError, match=reason):
        team_policy("http://gateway/prometheus/").check_redirect(
            current="http://gateway/prometheus/api/v1/query", location=location
        )


def test_a_redirect_from_https_down_to_http_is_not_followed() -> None:
    policy = team_policy("https://prom.example/", "http://prom.example/")

    with pytest.raises(errors.OutboundRefusedError, match="from https to http"):
        policy.check_redirect(current="https://prom.example/api/v1/query", location="http://prom.example/api/v1/query")


# -- the order of the checks --------------------------------------------------------------------


def test_a_refused_release_url_is_refused_before_any_lookup_and_before_its_secret_is_read() -> None:
    from datetime import UTC, datetime

    from istio_canary.analysis import runner
    from istio_canary.analysis.egress import Egress, Resolver
    from istio_canary.models import AnalysisStatus, CanaryReleaseSpec

    spec = CanaryReleaseSpec.model_validate({
        "service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2", "image": "reviews:v2"},
        "analysis": {"prometheusUrl": "http://127.0.0.1:8080/internal/admin",
                     "prometheusAuth": {"secretRef": {"name": "prometheus-auth"}}},
    })
    read: list[str] = []

    def read_credentials(name: str) -> outbound.Credentials:
        read.append(name)
        return outbound.Credentials(token="t")

    class NoLookups(Resolver):
        def __call__(self, host: str, port: int) -> list[str]:
            raise AssertionError(f"{host} was looked up")

    egress = Egress(policy=OutboundPolicy.build(prometheus_url=OWN), resolver=NoLookups())
    with pytest.raises(errors.OutboundRefusedError, match="queries only its own Prometheus"):
        runner.check(
            prometheus=None, spec=spec, namespace="bookinfo", status=AnalysisStatus(step_started_at=None),
            now=datetime.now(UTC), egress=egress, read_credentials=read_credentials,
        )
    assert read == []
