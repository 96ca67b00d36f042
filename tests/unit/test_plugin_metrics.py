"""The operator's own metrics, read back from their registry."""

from __future__ import annotations

import urllib.request

import pytest
from istio_canary import metrics
from istio_canary.metrics import OperatorMetrics, VersionWeight
from istio_canary.models import CanaryReleaseStatus, Phase, Role, Verdict, VersionStatus
from istio_canary.models.hooks import HookType


@pytest.fixture
def m() -> OperatorMetrics:
    return OperatorMetrics()


def sample(m: OperatorMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(f"istio_canary_{name}", labels)


def test_every_phase_is_exported_as_zero_before_any_release(m: OperatorMetrics) -> None:
    for phase in Phase:
        assert sample(m, "releases", phase=phase.value) == 0


def test_releases_are_counted_by_phase_and_move_between_phases(m: OperatorMetrics) -> None:
    m.observe_release(namespace="a", name="reviews", phase=Phase.PROGRESSING)
    m.observe_release(namespace="b", name="reviews", phase=Phase.PROGRESSING)
    m.observe_release(namespace="a", name="reviews", phase=Phase.TAKEN_OVER)

    assert sample(m, "releases", phase="Progressing") == 1
    assert sample(m, "releases", phase="TakenOver") == 1


def test_forgetting_a_release_never_counts_below_zero(m: OperatorMetrics) -> None:
    m.observe_release(namespace="a", name="reviews", phase="Aborted")
    m.forget_release(namespace="a", name="reviews")
    m.forget_release(namespace="a", name="reviews")

    assert sample(m, "releases", phase="Aborted") == 0


def test_weights_are_exported_per_version_and_role(m: OperatorMetrics) -> None:
    m.observe_release(
        namespace="bookinfo",
        name="reviews",
        phase=Phase.PROGRESSING,
        weights=[VersionWeight("v1", Role.STABLE, 70), VersionWeight("v2", Role.CANARY, 30)],
    )

    labels = {"namespace": "bookinfo", "release": "reviews"}
    assert sample(m, "weight_percent", **labels, version="v1", role="stable") == 70
    assert sample(m, "weight_percent", **labels, version="v2", role="canary") == 30


def test_a_version_taken_offline_loses_its_weight_series(m: OperatorMetrics) -> None:
    both = [VersionWeight("v1", "stable", 0), VersionWeight("v2", "canary", 100)]
    m.observe_release(namespace="ns", name="r", phase="TakenOver", weights=both)
    m.observe_release(
        namespace="ns", name="r", phase="Completed", weights=[VersionWeight("v2", "canary", 100)]
    )

    assert (
        sample(m, "weight_percent", namespace="ns", release="r", version="v1", role="stable")
        is None
    )
    assert (
        sample(m, "weight_percent", namespace="ns", release="r", version="v2", role="canary") == 100
    )


def test_forgetting_a_release_removes_its_weight_series(m: OperatorMetrics) -> None:
    m.observe_release(
        namespace="ns", name="r", phase="Progressing", weights=[VersionWeight("v2", "canary", 5)]
    )
    m.forget_release(namespace="ns", name="r")

    assert b"weight_percent{" not in m.render()


def test_observe_status_reads_phase_and_weights_from_a_status(m: OperatorMetrics) -> None:
    status = CanaryReleaseStatus(
        phase=Phase.PROGRESSING,
        versions=[
            VersionStatus(version="v1", role=Role.STABLE, deployment="reviews-v1", weight=90),
            VersionStatus(version="v2", role=Role.CANARY, deployment="reviews-v2", weight=10),
        ],
    )
    m.observe_status(namespace="bookinfo", name="reviews", status=status)

    assert sample(m, "releases", phase="Progressing") == 1
    assert (
        sample(
            m,
            "weight_percent",
            namespace="bookinfo",
            release="reviews",
            version="v2",
            role="canary",
        )
        == 10
    )


def test_reconcile_timer_observes_also_when_the_handler_raises(m: OperatorMetrics) -> None:
    with pytest.raises(RuntimeError), m.reconcile_timer("on_update"):
        raise RuntimeError("boom")
    with m.reconcile_timer("on_update"):
        pass

    assert sample(m, "reconcile_duration_seconds_count", handler="on_update") == 2


def test_api_errors_are_counted_by_verb_resource_and_code(m: OperatorMetrics) -> None:
    m.count_api_error(verb="patch", resource="virtualservices", code=409)
    m.count_api_error(verb="patch", resource="virtualservices", code=409)
    m.count_api_error(verb="get", resource="deployments", code=0)

    assert sample(m, "api_errors_total", verb="patch", resource="virtualservices", code="409") == 2
    assert sample(m, "api_errors_total", verb="get", resource="deployments", code="none") == 1


def test_verdicts_and_rollbacks_are_counted(m: OperatorMetrics) -> None:
    m.count_verdict(Verdict.FAIL)
    m.count_verdict("Pass")
    m.count_rollback()

    assert sample(m, "analysis_verdicts_total", verdict="Fail") == 1
    assert sample(m, "analysis_verdicts_total", verdict="Pass") == 1
    assert sample(m, "analysis_verdicts_total", verdict="NoData") == 0
    assert sample(m, "rollbacks_total") == 1


def test_webhook_calls_are_counted_by_type_and_result_and_every_series_exists(m: OperatorMetrics) -> None:
    m.count_webhook_call(kind=HookType.CONFIRM_PROMOTION, ok=False)
    m.count_webhook_call(kind=HookType.CONFIRM_PROMOTION, ok=True)

    assert sample(m, "webhook_calls_total", type="ConfirmPromotion", result="failed") == 1
    assert sample(m, "webhook_calls_total", type="ConfirmPromotion", result="ok") == 1
    assert sample(m, "webhook_calls_total", type="Rollback", result="ok") == 0


def test_module_functions_act_on_the_default_metrics() -> None:
    metrics.observe_release(namespace="unit-test", name="default-metrics", phase="Paused")
    try:
        assert (
            metrics.DEFAULT.registry.get_sample_value("istio_canary_releases", {"phase": "Paused"})
            == 1
        )
    finally:
        metrics.forget_release(namespace="unit-test", name="default-metrics")


def test_the_metrics_server_serves_the_dedicated_registry(m: OperatorMetrics) -> None:
    m.count_rollback()
    server, thread = metrics.start_metrics_server(0, addr="127.0.0.1", metrics=m)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
        thread.join(timeout=5)

    assert "istio_canary_rollbacks_total 1.0" in body
    # The default registry's process collector is not mixed in.
    assert "process_cpu_seconds_total" not in body
