"""What the dashboard's pages show and which patch each button sends (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from istio_canary.dashboard import series, topology, verbs, views
from istio_canary.plugin.patches import PluginError

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RELEASE: dict[str, Any] = {
    "metadata": {"name": "reviews", "namespace": "bookinfo", "creationTimestamp": "2026-01-01T11:58:00Z"},
    "spec": {"service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2"}, "traffic": {"weight": 30}},
    "status": {
        "phase": "Progressing",
        "traffic": {"stable": 70, "canary": 30},
        "successRate": 99.5,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Progressing", "lastTransitionTime": "2026-01-01T11:59:00Z"},
            {"type": "CanaryReady", "status": "True", "reason": "Ready", "lastTransitionTime": "2026-01-01T11:58:30Z"},
        ],
        "analysis": {"history": [{"time": "2026-01-01T11:59:30Z", "step": 0, "weight": 10, "verdict": "Pass",
                                  "canaryRequests": 100.0, "evidence": {"errorsWorse": [0.1]}}]},
    },
}


class TestReleaseViews:
    def test_a_row_has_weights_from_status_and_the_age(self) -> None:
        row = views.release_row(RELEASE, now=NOW)
        assert row["stable"] == {"version": "v1", "weight": 70} and row["canary"] == {"version": "v2", "weight": 30}
        assert (row["phase"], row["strategy"], row["ageSeconds"]) == ("Progressing", "Canary", 120)
        assert row["health"] == {"state": "ok", "successRate": 99.5}

    @pytest.mark.parametrize(
        ("status", "state"),
        [
            ({"phase": "Failed"}, "failing"),
            ({"conditions": [{"type": "Stalled", "status": "True"}]}, "failing"),
            ({"conditions": [{"type": "MetricsAvailable", "status": "False"}]}, "warning"),
            ({"phase": "Progressing"}, "ok"),
        ],
    )
    def test_health_says_failing_warning_or_ok(self, status: dict[str, Any], state: str) -> None:
        assert views.health(status)["state"] == state

    def test_the_timeline_merges_conditions_and_events_oldest_first(self) -> None:
        event = {"reason": "DashboardAction", "message": "alice set x", "lastTimestamp": "2026-01-01T11:58:45Z"}
        entries = views.timeline(RELEASE, [event])
        reasons = [e["reason"] for e in entries]
        assert reasons == ["CanaryReady=True: Ready", "DashboardAction", "Ready=False: Progressing"]

    def test_the_same_event_at_the_same_time_is_shown_once_with_the_counts_added(self) -> None:
        event = {"reason": "CanaryNotReady", "message": "waiting", "lastTimestamp": "2026-01-01T11:58:45Z", "count": 2}
        timeline = views.timeline(RELEASE, [event, event, {**event, "message": "other"}])
        entries = [e for e in timeline if e["source"] == "event"]
        assert [(e["message"], e["count"]) for e in entries] == [("waiting", 4), ("other", 2)]

    def test_verdicts_keep_the_numbers_but_not_the_evidence(self) -> None:
        (look,) = views.verdicts(RELEASE)
        assert (look["verdict"], look["canaryRequests"], look["weight"]) == ("Pass", 100.0, 10)
        assert "evidence" not in look

    def test_a_release_without_status_is_pending(self) -> None:
        detail = views.release_detail({"metadata": {"name": "r"}, "spec": {}}, [], now=NOW)
        assert (detail["phase"], detail["timeline"], detail["verdicts"], detail["versions"]) == ("Pending", [], [], [])


class TestVerbs:
    @pytest.mark.parametrize(
        ("verb", "form", "patch"),
        [
            ("set-weight", {"weight": 40}, {"spec": {"traffic": {"weight": 40}}}),
            ("set-weight", {"weight": "40"}, {"spec": {"traffic": {"weight": 40}}}),
            ("take-over", {"version": "v2"}, {"spec": {"takeOver": "v2"}}),
            ("abort", {}, {"spec": {"abort": True}}),
            ("pause", {}, {"spec": {"policy": "Paused"}}),
            ("resume", {}, {"spec": {"policy": "WaitForWorkloadReady"}}),
        ],
    )
    def test_each_button_sends_the_plugins_patch(self, verb: str, form: dict[str, Any], patch: dict[str, Any]) -> None:
        assert verbs.patch_for(verb, RELEASE, form) == patch

    @pytest.mark.parametrize(
        ("verb", "form"),
        [("set-weight", {"weight": 101}), ("set-weight", {"weight": True}), ("set-weight", {"weight": "x"}),
         ("set-weight", {}), ("take-over", {"version": "v3"}), ("take-over", {}), ("offline", {}), ("delete", {})],
    )  # fmt: skip
    def test_refused_values_and_unknown_verbs_raise_the_plugins_error(self, verb: str, form: dict[str, Any]) -> None:
        with pytest.raises(PluginError):
            verbs.patch_for(verb, RELEASE, form)


def matrix(version: str, values: list[tuple[float, str]]) -> dict[str, Any]:
    return {"metric": {"destination_version": version}, "values": values}


class TestCharts:
    def test_the_success_rate_is_computed_per_time_and_a_version_without_errors_is_at_100(self) -> None:
        answers = {
            "requests": [matrix("v1", [(1, "10"), (2, "10")]), matrix("v2", [(1, "4"), (2, "0")])],
            "errors": [matrix("v2", [(1, "1")])],
            "p99": [matrix("v1", [(1, "NaN"), (2, "50")])],
        }
        charts = series.charts(answers)
        assert charts["successRate"] == {"v1": [(1.0, 100.0), (2.0, 100.0)], "v2": [(1.0, 75.0)]}
        assert charts["latencyP99Ms"] == {"v1": [(2.0, 50.0)]}
        assert charts["latencyP50Ms"] == {}

    def test_the_queries_are_the_analysis_ones_for_the_service(self) -> None:
        queries = series.chart_queries(namespace="bookinfo", service="reviews", window_seconds=30)
        assert set(queries) == set(series.QUERIES)
        assert all('destination_service_name="reviews"' in q and "[30s]" in q for q in queries.values())
        assert queries["p99"].startswith("histogram_quantile(0.99,")


def edge(source: str, version: str, dest: str, dest_version: str, code: str, rate: str) -> dict[str, Any]:
    labels = {"source_canonical_service": source, "source_version": version, "destination_service_name": dest,
              "destination_version": dest_version, "response_code": code}  # fmt: skip
    return {"metric": labels, "value": [1, rate]}


class TestTopology:
    def test_services_hold_their_versions_and_edges_carry_rate_and_success(self) -> None:
        vector = [
            edge("productpage", "v1", "reviews", "v1", "200", "7"),
            edge("productpage", "v1", "reviews", "v2", "200", "2"),
            edge("productpage", "v1", "reviews", "v2", "503", "1"),
            edge("meshsim-client", "unknown", "productpage", "v1", "200", "10"),
        ]
        graph = topology.graph(vector, [RELEASE])
        nodes = {n["id"]: n for n in graph["nodes"]}
        assert nodes["reviews/v2"]["parent"] == "reviews" and nodes["reviews/v2"]["weight"] == 30
        assert nodes["reviews"]["released"] is True and nodes["reviews"]["split"] == {"v1": 70, "v2": 30}
        edges = {e["id"]: e for e in graph["edges"]}
        assert edges["productpage/v1->reviews/v2"]["requestRate"] == 3.0
        assert edges["productpage/v1->reviews/v2"]["successRate"] == pytest.approx(66.67)
        assert edges["meshsim-client->productpage/v1"]["successRate"] == 100.0
        assert "released" not in nodes["productpage"]

    def test_a_release_without_traffic_still_shows_its_service(self) -> None:
        graph = topology.graph([], [RELEASE])
        assert {n["id"] for n in graph["nodes"]} == {"reviews", "reviews/v1", "reviews/v2"}
        assert graph["edges"] == []

    def test_the_query_reads_the_namespace_destination_side(self) -> None:
        query = topology.topology_query(namespace='we"ird', window_seconds=60)
        assert 'destination_workload_namespace="we\\"ird"' in query and 'reporter="destination"' in query
