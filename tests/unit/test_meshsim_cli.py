"""The istio-canary-meshsim command reads its arguments the way its help says."""

from __future__ import annotations

import argparse

import pytest
from meshsim.__main__ import main, parse_behaviour, parse_listen, parse_service


def test_listen_takes_host_and_port_or_a_bare_port() -> None:
    assert parse_listen("0.0.0.0:9901") == ("0.0.0.0", 9901)
    assert parse_listen("9901") == ("127.0.0.1", 9901)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_listen("localhost:http")


def test_a_service_without_namespace_lives_in_the_default_namespace() -> None:
    assert parse_service("reviews", default_namespace="bookinfo") == ("bookinfo", "reviews")
    assert parse_service("shop/cart", default_namespace="bookinfo") == ("shop", "cart")


def test_a_behaviour_names_service_version_error_rate_and_latency() -> None:
    service, version, behaviour = parse_behaviour("reviews/v2=errorRate=0.1,p50=20,p99=80")
    assert (service, version) == ("reviews", "v2")
    assert (behaviour.error_rate, behaviour.latency_p50_ms, behaviour.latency_p99_ms) == (
        0.1,
        20,
        80,
    )


def test_an_invalid_behaviour_is_an_argument_error() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_behaviour("reviews/v2=errorRate=3")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_behaviour("v2=errorRate=0.1")


def test_a_missing_kubeconfig_exits_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kubeconfig", "/nonexistent/kubeconfig", "--namespace", "bookinfo"]) == 2
    assert "istio-canary-meshsim:" in capsys.readouterr().err
