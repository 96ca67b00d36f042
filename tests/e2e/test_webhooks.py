"""Issue 15 (1, 2): webhooks, gates and manual approvals, with local receivers on 127.0.0.1.

Each receiver records every payload and answers with the code a test sets. The webhook URLs
carry a token in their query, which must never show in status, Events or the operator's logs.
Short intervals (``intervalSeconds: 2``) keep each release to well under a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from devcluster import Cluster, PrometheusServer
from istio_canary.plugin import command
from meshsim.simulator import Simulator

from tests.e2e.helpers import get, patch_spec, release_phase, wait_for
from tests.e2e.receivers import Receiver
from tests.e2e.releases import ReleaseStarter
from tests.e2e.test_analysis import (
    RPS,
    PhaseRecorder,
    canary_weights,
    event_reasons,
    release,
    status,
)
from tests.e2e.test_crd_validation import HasKubectl, create, with_changes

# Every state these releases pass through is checked (tests/invariants).
pytestmark = pytest.mark.usefixtures("invariant_monitor")

TOKEN = "hook-token-s3cr3t"
LEAKS = (TOKEN, "receiver-body-must-not-leak")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def hook(receiver: Receiver, name: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "url": receiver.url(f"/{name}?token={TOKEN}"), "timeoutSeconds": 2, **extra}


def flags(receiver: Receiver, *extra: str) -> tuple[str, ...]:
    return ("--allowed-webhook-prefix", receiver.base, *extra)


def condition(found: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in found.get("conditions") or [] if c["type"] == kind), {})


def status_when(cluster: Cluster, ns: str, ready: Any) -> dict[str, Any] | None:
    """The release's status once ``ready(status)`` holds, else None (for wait_for)."""
    found = status(cluster, ns)
    return found if ready(found) else None


def events_json(cluster: Cluster, ns: str) -> str:
    return cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout


def assert_nothing_leaked(cluster: Cluster, ns: str, started: Any) -> None:
    stored = json.dumps(status(cluster, ns))
    events, logs = events_json(cluster, ns), started.operator.logs()
    for secret in LEAKS:
        assert secret not in stored and secret not in events and secret not in logs, secret


def test_every_gate_holds_and_opens_and_the_hooks_see_the_release_through_to_completed(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator,
    prometheus: PrometheusServer, receiver: Receiver,
) -> None:
    ns = namespace
    body = release(approvals=[{"beforeWeight": 50}])
    body["spec"]["webhooks"] = [
        hook(receiver, "confirm", "ConfirmRollout"), hook(receiver, "pre", "PreRollout"),
        hook(receiver, "load", "Rollout", metadata={"cmd": "hey -z 1m http://reviews:9080/"}),
        hook(receiver, "more", "ConfirmTrafficIncrease"), hook(receiver, "promote", "ConfirmPromotion"),
        hook(receiver, "after", "PostRollout"), hook(receiver, "tell", "Event"),
    ]
    for gate in ("/confirm", "/more", "/promote"):
        receiver.answer(gate, 503)
    with PhaseRecorder(cluster, ns) as seen:
        started = progressing_release(
            body, until="Pending",
            operator_args=flags(receiver, "--prometheus-url", prometheus.url, "--metrics-interval", "2"),
            prepare=lambda: mesh.set_load(namespace=ns, service="reviews", rps=RPS),
        )
        wait_for(lambda: len(receiver.calls("/confirm")) >= 4, timeout=60, what="ConfirmRollout asked twice")
        gated = status(cluster, ns)
        assert gated["phase"] == "Pending" and gated["gate"]["gate"] == "confirm-rollout"
        assert (condition(gated, "Gated")["status"], condition(gated, "Gated")["reason"]) == (
            "True", "WaitingForWebhook")
        assert get(cluster, "deployment", "reviews-v2", ns) is None, "no canary before ConfirmRollout said yes"
        receiver.answer("/confirm", 200)
        both = wait_for(
            lambda: status_when(cluster, ns, lambda s: (s.get("gate") or {}).get("gate") == "weight-50"),
            timeout=90, what="the hold before 50%",
        )
        assert both["gate"]["waitingFor"] == ["Webhook", "Approval"] and both["gate"]["webhooks"] == ["more"]
        receiver.answer("/more", 200)
        # Once ConfirmTrafficIncrease said yes, only the approval holds the step.
        held = wait_for(
            lambda: status_when(cluster, ns, lambda s: (s.get("gate") or {}).get("waitingFor") == ["Approval"]),
            timeout=90, what="the approval before 50%",
        )
        assert canary_weights(cluster, ns) == [{"v1": 80, "v2": 20}]
        assert condition(held, "Gated")["reason"] == "WaitingForApproval"
        patch_spec(cluster, ns, "reviews", {"approve": {"beforeWeight": 50, "canaryRevision": "not-this-one"}})
        looked = len(receiver.calls("/load"))  # the Rollout hook is called at every look
        wait_for(lambda: len(receiver.calls("/load")) >= looked + 3, timeout=30, what="three more looks")
        assert canary_weights(cluster, ns) == [{"v1": 80, "v2": 20}], "another revision's approval does not count"
        target = ["approve", "reviews", "-n", ns, "--kubeconfig", str(cluster.kubeconfig)]
        assert command.main(target) == 0
        promoting = wait_for(
            lambda: status_when(cluster, ns, lambda s: (s.get("gate") or {}).get("gate") == "promotion"),
            timeout=90, what="ConfirmPromotion holding",
        )
        assert canary_weights(cluster, ns) == [{"v1": 50, "v2": 50}]
        assert promoting["gate"]["webhooks"] == ["promote"]
        receiver.answer("/promote", 200)
        done = wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), timeout=90, what="Completed")
        wait_for(lambda: receiver.calls("/after"), timeout=30, what="PostRollout")

    assert "Aborted" not in seen.phases and "Failed" not in seen.phases
    assert [w for w in seen.weights if w][:1] == [20]
    assert len(receiver.calls("/pre")) == 1 and len(receiver.calls("/after")) == 1
    looks = receiver.calls("/load")
    assert looks and looks[0].payload["metadata"] == {"cmd": "hey -z 1m http://reviews:9080/"}
    assert {r.payload["canary"]["weight"] for r in looks} >= {20, 50}
    assert receiver.calls("/more") and receiver.calls("/more")[0].payload["gate"] == "weight-50"
    told = [r.payload["phase"] for r in receiver.calls("/tell")]
    assert told[0] == "WaitingForCanary" and told[-1] == "Completed" and "Progressing" in told
    payload = receiver.calls("/after")[0].payload
    assert (payload["name"], payload["namespace"], payload["phase"]) == ("reviews", ns, "Completed")
    assert payload["checksum"] and payload["canaryRevision"]
    assert condition(done["status"], "Gated")["status"] == "False"
    calls = done["status"]["webhooks"]["calls"]
    assert all(set(c) <= {"name", "type", "time", "ok", "code", "result", "gate"} for c in calls)
    reasons = event_reasons(cluster, ns)
    assert {"WaitingForWebhook", "WaitingForApproval", "WebhookCalled", "WebhookFailed"} <= set(reasons)
    assert_nothing_leaked(cluster, ns, started)


def test_a_failed_pre_rollout_rolls_back_before_the_canary_gets_any_traffic(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, receiver: Receiver,
) -> None:
    ns = namespace
    receiver.answer("/pre", 500)
    body = release()
    del body["spec"]["analysis"]
    body["spec"]["traffic"] = {"weight": 30}
    body["spec"]["webhooks"] = [hook(receiver, "pre", "PreRollout"), hook(receiver, "after", "PostRollout")]
    with PhaseRecorder(cluster, ns) as seen:
        started = progressing_release(body, until="Aborted", operator_args=flags(receiver))
    aborted = started.status
    assert not any(seen.weights), "the canary never had traffic"
    assert aborted["abortReason"] == "WebhookRollback"
    assert "PreRollout webhook pre answered HTTP 500" in aborted["message"]
    assert (condition(aborted, "Stalled")["status"], condition(aborted, "Stalled")["reason"]) == (
        "True", "WebhookRollback")
    assert len(receiver.calls("/pre")) == 2, "one call, tried twice"
    assert get(cluster, "deployment", "reviews-v2", ns) is None
    wait_for(lambda: receiver.calls("/after"), timeout=30, what="PostRollout after Aborted")
    assert {"WebhookRollback", "WebhookFailed"} <= set(event_reasons(cluster, ns))
    assert_nothing_leaked(cluster, ns, started)


def test_a_rollback_hook_rolls_back_only_once_it_answers_2xx(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, receiver: Receiver,
) -> None:
    ns = namespace
    receiver.answer("/stop", 404)
    body = release(intervalSeconds=2)
    del body["spec"]["analysis"]
    body["spec"]["traffic"] = {"weight": 30}
    body["spec"]["webhooks"] = [hook(receiver, "stop", "Rollback")]
    started = progressing_release(body, operator_args=flags(receiver))
    wait_for(lambda: len(receiver.calls("/stop")) >= 2, timeout=40, what="the Rollback hook polled twice")
    assert release_phase(cluster, ns, "reviews", "Progressing") is not None
    assert canary_weights(cluster, ns) == [{"v1": 70, "v2": 30}]
    receiver.answer("/stop", 200)
    aborted = wait_for(lambda: release_phase(cluster, ns, "reviews", "Aborted"), timeout=60, what="Aborted")
    assert aborted["status"]["abortReason"] == "WebhookRollback"
    assert "Rollback webhook stop answered 2xx" in aborted["status"]["message"]
    assert get(cluster, "deployment", "reviews-v2", ns) is None
    assert_nothing_leaked(cluster, ns, started)


def test_a_failing_rollout_hook_fails_the_analysis_look_and_rolls_back(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator,
    prometheus: PrometheusServer, receiver: Receiver,
) -> None:
    ns = namespace
    receiver.answer("/acceptance", 500)
    body = release()
    body["spec"]["webhooks"] = [hook(receiver, "acceptance", "Rollout")]
    with PhaseRecorder(cluster, ns) as seen:
        started = progressing_release(
            body, until="Aborted", timeout=120,
            operator_args=flags(receiver, "--prometheus-url", prometheus.url, "--metrics-interval", "2"),
            prepare=lambda: mesh.set_load(namespace=ns, service="reviews", rps=RPS),
        )
    assert {w for w in seen.weights if w} <= {20}
    aborted = started.status
    assert aborted["abortReason"] == "AnalysisFailed"
    assert "Rollout webhook acceptance answered HTTP 500" in aborted["message"]
    assert aborted["analysis"]["lastVerdict"] == "Fail"
    assert_nothing_leaked(cluster, ns, started)


def test_hooks_that_hang_or_cannot_be_reached_hold_the_release_with_a_clear_status_and_no_traffic(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter,
) -> None:
    ns = namespace
    closed = Receiver()  # never started: its port refuses connections
    closed.__exit__()
    with Receiver(delay=30) as hanging:
        body = release()
        del body["spec"]["analysis"]
        body["spec"]["traffic"] = {"weight": 30}
        body["spec"]["webhooks"] = [
            {**hook(hanging, "slow", "ConfirmRollout"), "timeoutSeconds": 1},
            hook(closed, "gone", "ConfirmRollout"),
        ]
        started = progressing_release(
            body, until="Pending", operator_args=("--allowed-webhook-prefix", hanging.base,
                                                  "--allowed-webhook-prefix", closed.base),
        )
        held = wait_for(
            lambda: status_when(cluster, ns, lambda s: len((s.get("webhooks") or {}).get("calls", [])) >= 4),
            timeout=60, what="each hook asked twice",
        )
    results = {(c["name"], c["result"]) for c in held["webhooks"]["calls"]}
    assert ("slow", "did not answer within 1 s") in results
    assert ("gone", "did not answer: the connection failed") in results
    assert held["phase"] == "Pending" and set(held["gate"]["webhooks"]) == {"slow", "gone"}
    assert "waiting for webhook(s) slow, gone to answer 2xx" in held["message"]
    assert get(cluster, "deployment", "reviews-v2", ns) is None
    assert get(cluster, "virtualservice", "reviews", ns) is None, "no routing written before the gate opens"
    assert "WebhookFailed" in event_reasons(cluster, ns)
    assert_nothing_leaked(cluster, ns, started)


def test_a_webhook_url_the_outbound_policy_refuses_fails_the_release_before_anything_changes(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, receiver: Receiver,
) -> None:
    ns = namespace
    body = release()
    del body["spec"]["analysis"]
    body["spec"]["webhooks"] = [hook(receiver, "confirm", "ConfirmRollout")]
    started = progressing_release(body, until="Failed")  # no --allowed-webhook-prefix
    message = started.status["message"]
    assert "webhook 'confirm'" in message and "--allowed-webhook-prefix" in message
    assert receiver.received == []
    assert get(cluster, "deployment", "reviews-v2", ns) is None
    assert "OutboundRefused" in event_reasons(cluster, ns)
    assert_nothing_leaked(cluster, ns, started)


HOOK = {"name": "gate", "type": "ConfirmPromotion", "url": "http://hooks.test:8080/gate"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"webhooks": [HOOK, HOOK]}, "webhook names must be unique", id="duplicate-names"),
        pytest.param({"webhooks": [{**HOOK, "url": "http://me:pw@hooks.test/"}]},
                     "url must not carry a user name or password", id="credentials-in-url"),
        pytest.param({"webhooks": [{**HOOK, "url": "ftp://hooks.test/"}]}, "url must be an http or https URL",
                     id="scheme"),
        pytest.param({"webhooks": [{**HOOK, "timeoutSeconds": 120}]},
                     "spec.webhooks[0].timeoutSeconds: Invalid value: 120", id="timeout"),
        pytest.param({"webhooks": [{**HOOK, "type": "Sometimes"}]}, 'Unsupported value: "Sometimes"', id="type"),
        pytest.param({"analysis": {"steps": [20, 50], "approvals": [{"beforeWeight": 50, "beforePromotion": True}]}},
                     "set exactly one of beforeWeight or beforePromotion: true", id="approval-of-two-gates"),
        pytest.param({"approve": {"beforePromotion": True}}, "spec.approve.canaryRevision: Required value",
                     id="approval-of-no-revision"),
    ],
)
def test_the_api_server_refuses_bad_webhooks_and_approvals_with_a_clear_message(
    cluster: HasKubectl, namespace: str, changes: dict[str, Any], message: str
) -> None:
    proc = create(cluster, namespace, with_changes(changes))
    assert proc.returncode != 0, f"accepted an invalid spec: {changes}"
    assert message in proc.stderr, proc.stderr
