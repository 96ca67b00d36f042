"""The mesh simulator answers, counts and exports requests like an Istio mesh, without a cluster."""

from __future__ import annotations

import json
import math
import random
import statistics
import time
import urllib.request
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from meshsim import server, traffic
from meshsim.mesh import MeshSnapshot, snapshot_from_objects
from meshsim.simulator import Simulator
from prometheus_client.parser import text_string_to_metric_families

OBJECTS = list(
    yaml.safe_load_all(
        """
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec: {selector: {app: reviews}, ports: [{port: 9080}]}
---
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
    - match: [{headers: {end-user: {exact: jason}}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - route: [{destination: {host: reviews, subset: v1}}]
      mirror: {host: reviews, subset: v2}
      mirrorPercentage: {value: 50}
"""
    )
)


def deployment(version: str, ready: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"reviews-{version}", "namespace": "bookinfo"},
        "spec": {"template": {"metadata": {"labels": {"app": "reviews", "version": version}}}},
        "status": {"readyReplicas": ready},
    }


def bookinfo(*, v2_ready: int = 1) -> MeshSnapshot:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in OBJECTS:
        by_kind.setdefault(obj["kind"], []).append(obj)
    return snapshot_from_objects(
        virtual_services=by_kind["VirtualService"],
        destination_rules=by_kind["DestinationRule"],
        services=by_kind["Service"],
        deployments=[deployment("v1", 2), deployment("v2", v2_ready)],
    )


@pytest.fixture
def sim() -> Simulator:
    simulator = Simulator(snapshot_source=bookinfo, seed=3)
    simulator.refresh()
    return simulator


def samples(sim: Simulator, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(sim.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class TestSingleRequests:
    def test_a_request_reports_the_version_that_answered_and_its_mirror(
        self, sim: Simulator
    ) -> None:
        jason = sim.request(host="reviews", namespace="bookinfo", headers={"end-user": "jason"})
        assert (jason.version, jason.code, jason.mirrored_to) == ("v2", 200, ())
        outcomes = [sim.request(host="reviews", namespace="bookinfo") for _ in range(200)]
        assert {o.version for o in outcomes} == {"v1"}
        assert 60 < sum(1 for o in outcomes if o.mirrored_to == ("v2",)) < 140

    def test_a_version_with_an_error_rate_of_one_always_answers_500(self, sim: Simulator) -> None:
        sim.set_version_behaviour(
            namespace="bookinfo", service="reviews", version="v2", error_rate=1.0
        )
        outcome = sim.request(host="reviews", namespace="bookinfo", headers={"end-user": "jason"})
        assert outcome.code == 500
        assert sim.stats()["services"]["bookinfo/reviews"]["errors"] == {"v2": 1}

    def test_a_route_to_an_unready_subset_answers_503_with_flag_uh(self) -> None:
        sim = Simulator(snapshot_source=lambda: bookinfo(v2_ready=0), seed=1)
        sim.refresh()
        outcome = sim.request(host="reviews", namespace="bookinfo", headers={"end-user": "jason"})
        assert (outcome.version, outcome.code, outcome.flags) == (None, 503, "UH")
        assert (
            samples(
                sim,
                "istio_requests_total",
                reporter="source",
                response_code="503",
                response_flags="UH",
            )
            == 1
        )
        assert samples(sim, "istio_requests_total", reporter="destination") == 0

    def test_the_json_form_names_the_mirror_target_or_null(self, sim: Simulator) -> None:
        body = sim.request(
            host="reviews", namespace="bookinfo", headers={"end-user": "jason"}
        ).to_json()
        assert body["version"] == "v2" and body["mirroredTo"] is None and body["code"] == 200


class TestSyntheticLoad:
    def test_load_arrives_at_the_configured_rate(self, sim: Simulator) -> None:
        sim.set_load(namespace="bookinfo", service="reviews", rps=50)
        sent = sum(sim.step(0.1) for _ in range(1000))  # 100 simulated seconds
        assert abs(sent - 5000) < 4 * math.sqrt(5000)

    def test_the_mix_shapes_that_share_of_requests(self, sim: Simulator) -> None:
        jason = {"fraction": 0.1, "headers": {"end-user": "jason"}}
        sim.set_load(namespace="bookinfo", service="reviews", rps=100, mix=[jason])
        for _ in range(500):
            sim.step(0.1)
        served = sim.stats()["services"]["bookinfo/reviews"]["served"]
        total = served["v1"] + served["v2"]
        assert abs(served["v2"] / total - 0.1) < 0.02

    def test_zero_rps_stops_the_load(self, sim: Simulator) -> None:
        sim.set_load(namespace="bookinfo", service="reviews", rps=50)
        sim.set_load(namespace="bookinfo", service="reviews", rps=0)
        assert sim.step(1.0) == 0
        assert sim.loads() == {}

    def test_a_load_from_a_deployment_carries_its_pod_labels_as_the_source(self, sim: Simulator) -> None:
        sim.set_load(namespace="bookinfo", service="reviews", rps=50, source="reviews-v2")
        sim.set_load(namespace="bookinfo", service="ratings", rps=50, source="no-such-deployment")
        for _ in range(10):
            sim.step(0.1)
        labelled = {"source_workload": "reviews-v2", "source_canonical_service": "reviews", "source_version": "v2"}
        assert samples(sim, "istio_requests_total", reporter="destination", **labelled) > 0
        assert samples(sim, "istio_requests_total", source_workload="meshsim-client") > 0
        assert sim.loads()["bookinfo/reviews"]["source"] == "reviews-v2"

    def test_reset_zeroes_stats_but_not_the_prometheus_counters(self, sim: Simulator) -> None:
        sim.request(host="reviews", namespace="bookinfo")
        sim.reset_stats()
        assert sim.stats() == {"services": {}}
        assert samples(sim, "istio_requests_total", reporter="source") == 1


class TestMetrics:
    def test_served_and_mirrored_requests_carry_istio_labels(self, sim: Simulator) -> None:
        for _ in range(100):
            sim.request(host="reviews", namespace="bookinfo")
        common = {
            "destination_service": "reviews.bookinfo.svc.cluster.local",
            "destination_service_name": "reviews",
            "destination_service_namespace": "bookinfo",
            "destination_workload_namespace": "bookinfo",
            "source_workload": "meshsim-client",
            "request_protocol": "http",
            "response_flags": "-",
            "response_code": "200",
        }
        v1 = samples(
            sim, "istio_requests_total", reporter="destination", destination_version="v1",
            destination_workload="reviews-v1", **common,
        )  # fmt: skip
        mirrored = samples(
            sim, "istio_requests_total", reporter="destination", destination_version="v2",
            destination_workload="reviews-v2", **common,
        )  # fmt: skip
        client_side_v2 = samples(
            sim, "istio_requests_total", reporter="source", destination_version="v2"
        )
        assert v1 == 100
        assert 20 < mirrored < 80
        assert client_side_v2 == 0  # the client never sees a mirror's answer

    def test_durations_land_in_istios_default_buckets(self, sim: Simulator) -> None:
        sim.request(host="reviews", namespace="bookinfo")
        text = sim.metrics.exposition().decode()
        for bound in ("0.5", "25.0", "3.6e+06", "+Inf"):
            assert "istio_request_duration_milliseconds_bucket{" in text
            assert f'le="{bound}"' in text


class TestVersionBehaviour:
    def test_latency_has_the_requested_median_and_99th_percentile(self) -> None:
        behaviour = traffic.VersionBehaviour(latency_p50_ms=20, latency_p99_ms=80)
        rng = random.Random(5)
        latencies = sorted(behaviour.draw(rng)[1] for _ in range(20_000))
        assert statistics.median(latencies) == pytest.approx(20, rel=0.05)
        assert latencies[int(0.99 * len(latencies))] == pytest.approx(80, rel=0.1)

    def test_error_rate_is_the_share_of_500s(self) -> None:
        behaviour = traffic.VersionBehaviour(error_rate=0.1)
        rng = random.Random(5)
        errors = sum(behaviour.draw(rng)[0] == 500 for _ in range(10_000))
        assert abs(errors - 1000) < 4 * math.sqrt(10_000 * 0.09)

    @pytest.mark.parametrize(
        "body", [{"errorRate": 1.5}, {"latencyMs": {"p50": 50, "p99": 10}}, {"errorRate": "x"}]
    )
    def test_invalid_behaviours_are_refused(self, body: dict[str, Any]) -> None:
        with pytest.raises(traffic.SpecError):
            traffic.VersionBehaviour.from_json(body)

    def test_a_mix_adding_up_to_more_than_everything_is_refused(self) -> None:
        with pytest.raises(traffic.SpecError):
            traffic.LoadSpec.from_json({"rps": 1, "mix": [{"fraction": 0.7}, {"fraction": 0.4}]})

    def test_user_agents_and_cookies_become_headers(self) -> None:
        template = traffic.RequestTemplate.from_json(
            {"fraction": 1, "userAgent": "Android", "cookies": {"a": "1", "canary": "yes"}}
        )
        assert template.headers == {"user-agent": "Android", "cookie": "a=1; canary=yes"}

    def test_poisson_counts_have_the_right_mean(self) -> None:
        rng = random.Random(9)
        for mean in (0.5, 2.0, 80.0):
            draws = [traffic.draw_poisson(mean, rng) for _ in range(5000)]
            assert statistics.fmean(draws) == pytest.approx(mean, rel=0.05, abs=0.05)


class TestControlApi:
    async def client(self, sim: Simulator) -> TestClient[Any, Any]:
        client = TestClient(TestServer(server.build_app(sim)))
        await client.start_server()
        return client

    async def test_behaviour_load_request_and_stats_round_trip(self, sim: Simulator) -> None:
        client = await self.client(sim)
        try:
            put = await client.put(
                "/versions/bookinfo/reviews/v2", json={"errorRate": 1.0, "latencyMs": {"p50": 5}}
            )
            assert put.status == 200
            assert (await put.json())["latencyMs"] == {"p50": 5.0, "p99": 50.0}
            answer = await client.post(
                "/request",
                json={"host": "reviews", "namespace": "bookinfo", "headers": {"end-user": "jason"}},
            )
            assert (await answer.json())["code"] == 500
            load = await client.put("/load/bookinfo/reviews", json={"rps": 20})
            assert load.status == 200
            assert (await (await client.get("/load")).json())["bookinfo/reviews"]["rps"] == 20
            stats = await (await client.get("/stats")).json()
            assert stats["services"]["bookinfo/reviews"]["served"] == {"v2": 1}
            metrics = await (await client.get("/metrics")).text()
            assert 'destination_version="v2"' in metrics
        finally:
            await client.close()

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("PUT", "/versions/bookinfo/reviews/v2", {"errorRate": 2}),
            ("PUT", "/load/bookinfo/reviews", {"rps": -1}),
            ("POST", "/request", {"namespace": "bookinfo"}),
            ("POST", "/request", ["not", "an", "object"]),
        ],
    )
    async def test_invalid_bodies_get_400_with_a_reason(
        self, sim: Simulator, method: str, path: str, body: Any
    ) -> None:
        client = await self.client(sim)
        try:
            response = await client.request(method, path, json=body)
            assert response.status == 400
            assert (await response.json())["error"]
        finally:
            await client.close()


def test_a_simulator_in_a_thread_serves_its_control_api_and_generates_load() -> None:
    sim = Simulator(snapshot_source=bookinfo, seed=1, tick=0.05)
    with server.SimulatorServer(sim, listen=("127.0.0.1", 0)) as http:
        sim.set_load(namespace="bookinfo", service="reviews", rps=200)
        body = json.dumps({"host": "reviews", "namespace": "bookinfo"}).encode()
        request = urllib.request.Request(f"{http.url}/request", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["version"] == "v1"
        time.sleep(0.5)
        with urllib.request.urlopen(f"{http.url}/stats", timeout=5) as response:
            served = json.load(response)["services"]["bookinfo/reviews"]["served"]
        assert served["v1"] > 20
