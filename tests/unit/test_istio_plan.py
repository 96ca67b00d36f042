"""RoutePlan refuses plans that send traffic nowhere; ServicePort knows how Istio routes a port."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from istio_canary.istio.plan import PortKind, RoutePlan, ServicePort, service_ports
from istio_canary.models import MatchRule, StringMatch


def make_plan(**overrides: Any) -> RoutePlan:
    fields: dict[str, Any] = {
        "service": "reviews",
        "namespace": "bookinfo",
        "version_label": "version",
        "stable_version": "v1",
        "canary_version": "v2",
        "subsets": ("v1", "v2"),
        "stable_weight": 70,
        "canary_weight": 30,
    }
    return RoutePlan(**(fields | overrides))


@given(st.integers(0, 100))
def test_plan_accepts_any_split_that_adds_up_to_100(canary: int) -> None:
    plan = make_plan(stable_weight=100 - canary, canary_weight=canary)

    assert plan.weight_of("v1") + plan.weight_of("v2") == 100


@given(st.integers(-5, 105), st.integers(-5, 105))
def test_plan_rejects_weights_that_do_not_add_up_to_100(stable: int, canary: int) -> None:
    assume(not (stable + canary == 100 and 0 <= stable <= 100))
    with pytest.raises(ValueError, match="weight"):
        make_plan(stable_weight=stable, canary_weight=canary)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"subsets": ("v1",)}, "canary weight 30 points at a version without a subset"),
        ({"subsets": ("v2",)}, "stable weight 70 points at a version without a subset"),
        (
            {"subsets": ("v1",), "stable_weight": 100, "canary_weight": 0, "mirror_percent": 10.0},
            "mirroring",
        ),
        (
            {
                "subsets": ("v1",),
                "stable_weight": 100,
                "canary_weight": 0,
                "match": (MatchRule(uri=StringMatch(prefix="/")),),
            },
            "match rules",
        ),
        ({"subsets": ("v1", "v2", "v3")}, "neither the stable nor the canary"),
        ({"subsets": ("v1", "v1")}, "distinct"),
        ({"subsets": ()}, "non-empty"),
        ({"canary_version": "v1"}, "both"),
        ({"mirror_percent": 100.5}, "outside 0..100"),
    ],
)
def test_plan_rejects_routes_to_versions_without_a_subset(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_plan(**overrides)


def test_plan_after_offline_routes_everything_to_the_survivor() -> None:
    plan = make_plan(subsets=("v2",), stable_weight=0, canary_weight=100)

    assert plan.weight_of("v2") == 100
    assert plan.weight_of("v1") == 0


@pytest.mark.parametrize(
    ("port", "kind"),
    [
        (ServicePort(name="http", port=9080), PortKind.HTTP),
        (ServicePort(name="http2-api", port=80), PortKind.HTTP),
        (ServicePort(name="grpc-web", port=81), PortKind.HTTP),
        (ServicePort(name="grpc", port=82), PortKind.HTTP),
        (ServicePort(name="web", port=83, app_protocol="http"), PortKind.HTTP),
        (ServicePort(name="tcp-db", port=84, app_protocol="kubernetes.io/h2c"), PortKind.HTTP),
        (ServicePort(name="http-x", port=85, app_protocol="mysql"), PortKind.TCP),
        (ServicePort(name="tcp-db", port=3306), PortKind.TCP),
        (ServicePort(name="mongo", port=27017), PortKind.TCP),
        (ServicePort(name="https", port=443), PortKind.TCP),
        (ServicePort(name="tls-x", port=8443), PortKind.TCP),
        (ServicePort(name="", port=8080), PortKind.SNIFFED),
        (ServicePort(name="metrics", port=9090), PortKind.SNIFFED),
        (ServicePort(name="dns", port=53, protocol="UDP"), PortKind.UNROUTED),
        (ServicePort(name="http", port=53, protocol="SCTP"), PortKind.UNROUTED),
        (ServicePort(name="HTTP-Upper", port=86), PortKind.HTTP),
    ],
)
def test_port_kind_follows_istio_protocol_selection(port: ServicePort, kind: PortKind) -> None:
    assert port.kind is kind


def test_service_ports_are_read_from_a_service_object() -> None:
    service = {
        "spec": {
            "ports": [
                {"name": "http", "port": 9080, "protocol": "TCP", "targetPort": 9080},
                {"port": 9443, "appProtocol": "https"},
                {"name": "web", "port": 8080, "app_protocol": "http"},
            ]
        }
    }

    assert service_ports(service) == [
        ServicePort(name="http", port=9080, protocol="TCP"),
        ServicePort(name="", port=9443, protocol="TCP", app_protocol="https"),
        ServicePort(name="web", port=8080, protocol="TCP", app_protocol="http"),
    ]
