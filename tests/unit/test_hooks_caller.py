"""The webhook caller against a real HTTP server on 127.0.0.1: answers, retries, deadlines, the policy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pydantic
import pytest
from istio_canary import actions as act
from istio_canary import errors, outbound
from istio_canary.analysis.egress import Egress
from istio_canary.hooks import caller
from istio_canary.models import AnalysisSpec, CanaryReleaseSpec
from istio_canary.models.hooks import Approve
from istio_canary.plugin.patches import PluginError, approve_patch
from istio_canary.plugin.views import render_status
from rich.console import Console

from tests.e2e.receivers import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def egress_for(receiver: Receiver) -> Egress:
    return Egress(policy=outbound.OutboundPolicy.build(allowed_webhook_prefixes=[receiver.base]))


def hook(url: str, *, timeout: float = 2.0) -> act.CallWebhook:
    return act.CallWebhook(
        name="gate", type="ConfirmPromotion", url=url, timeout_seconds=timeout, gate="promotion",
        entry="gate/promotion@r", payload={"name": "reviews"},
    )


def test_a_2xx_answer_passes_and_the_payload_arrives(receiver: Receiver) -> None:
    result = caller.call(hook(receiver.url("/ok?token=s3cr3t")), egress=egress_for(receiver))
    assert (result.ok, result.code, result.result) == (True, 200, "answered HTTP 200")
    assert [r.payload for r in receiver.calls("/ok")] == [{"name": "reviews"}]


def test_a_500_is_tried_twice_and_reported_by_its_code_only(receiver: Receiver) -> None:
    receiver.answer("/fail", 500)
    result = caller.call(hook(receiver.url("/fail")), egress=egress_for(receiver))
    assert (result.ok, result.code, result.result) == (False, 500, "answered HTTP 500")
    assert len(receiver.calls("/fail")) == caller.ATTEMPTS
    assert "receiver-body" not in result.model_dump_json()


def test_a_hook_that_hangs_ends_at_its_timeout() -> None:
    with Receiver(delay=5.0) as slow:
        result = caller.call(hook(slow.url("/slow"), timeout=1.0), egress=egress_for(slow))
    assert not result.ok and result.code is None
    assert result.result == "did not answer within 1 s"


def test_an_unreachable_hook_fails_in_fixed_words(receiver: Receiver) -> None:
    closed = Receiver()  # never started: its port refuses connections
    closed.__exit__()
    policy = outbound.OutboundPolicy.build(allowed_webhook_prefixes=[closed.base])
    result = caller.call(hook(closed.url("/x")), egress=Egress(policy=policy))
    assert (result.ok, result.result) == (False, "did not answer: the connection failed")


def test_a_url_outside_the_allowed_prefixes_is_never_called(receiver: Receiver) -> None:
    result = caller.call(hook(receiver.url("/x")), egress=Egress())
    assert not result.ok and "outbound policy" in result.result
    assert receiver.received == []


def test_the_policy_refusal_names_the_hook_and_never_its_url() -> None:
    policy = outbound.OutboundPolicy.build(allowed_webhook_prefixes=["http://hooks.test:8080"])
    policy.check_webhook_url("http://hooks.test:8080/a?token=x", name="load")
    with pytest.raises(errors.OutboundRefusedError) as refused:
        policy.check_webhook_url("http://169.254.169.254/latest?token=s3cr3t", name="load")
    assert "load" in str(refused.value) and "s3cr3t" not in str(refused.value) and "169.254" not in str(refused.value)


def test_the_metadata_service_is_refused_even_under_an_allowed_prefix() -> None:
    policy = outbound.OutboundPolicy.build(allowed_webhook_prefixes=["http://169.254.169.254"])
    result = caller.call(hook("http://169.254.169.254/latest"), egress=Egress(policy=policy))
    assert not result.ok and result.code is None


BASE = {"service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2", "image": "r:2"}}


@pytest.mark.parametrize(
    "webhooks",
    [
        pytest.param([{"name": "a", "type": "Rollout", "url": "ftp://h/x"}], id="scheme"),
        pytest.param([{"name": "a", "type": "Rollout", "url": "http://user:pw@h/x"}], id="credentials"),
        pytest.param([{"name": "a", "type": "Rollout", "url": "http://h/x#frag"}], id="fragment"),
        pytest.param([{"name": "a", "type": "Rollout", "url": "http://h/x"}] * 2, id="duplicate-names"),
        pytest.param([{"name": "a", "type": "Sometimes", "url": "http://h/x"}], id="type"),
        pytest.param([{"name": "a", "type": "Rollout", "url": "http://h/x", "timeoutSeconds": 600}], id="timeout"),
    ],
)
def test_bad_webhooks_are_refused(webhooks: list[dict[str, object]]) -> None:
    with pytest.raises(pydantic.ValidationError):
        CanaryReleaseSpec.model_validate({**BASE, "webhooks": webhooks})


def test_an_approval_must_name_a_later_step_or_the_promotion() -> None:
    with pytest.raises(pydantic.ValidationError, match="beforeWeight 30 is not the weight of a step"):
        AnalysisSpec.model_validate({"steps": [20, 50], "approvals": [{"beforeWeight": 30}]})
    with pytest.raises(pydantic.ValidationError, match="exactly one"):
        AnalysisSpec.model_validate({"steps": [20, 50], "approvals": [{"beforeWeight": 50, "beforePromotion": True}]})
    assert AnalysisSpec.model_validate({"steps": [20, 50], "approvals": [{"beforeWeight": 50}]}).approvals


def test_kubectl_canary_approve_writes_what_the_gate_asks_for() -> None:
    approve = Approve(before_weight=50, canary_revision="abc").to_wire()
    waiting = {"status": {"gate": {"gate": "weight-50", "approve": approve, "since": "t"}}}
    assert approve_patch(waiting) == {"spec": {"approve": {"beforeWeight": 50, "beforePromotion": False,
                                                           "canaryRevision": "abc"}}}
    with pytest.raises(PluginError, match="waits for no approval"):
        approve_patch({"status": {}})


def test_kubectl_canary_status_shows_the_gate_and_the_latest_calls() -> None:


    approve = Approve(before_weight=50, canary_revision="abc123").to_wire()
    release = {
        "metadata": {"name": "reviews", "namespace": "bookinfo"},
        "spec": {"stable": {"version": "v1"}, "canary": {"version": "v2"}},
        "status": {
            "phase": "Progressing",
            "gate": {"gate": "weight-50", "webhooks": ["more"], "approve": approve, "since": "t"},
            "webhooks": {"calls": [{"name": "more", "type": "ConfirmTrafficIncrease", "time": "t", "ok": False,
                                    "code": 503, "result": "answered HTTP 503", "gate": "weight-50"}]},
        },
    }
    console = Console(width=200, record=True)
    console.print(render_status(release, [], now=datetime.now(UTC)))
    shown = console.export_text()
    assert "gated at weight-50: waiting for webhook(s) more" in shown
    assert "kubectl canary approve reviews" in shown and "abc123" in shown
    assert "answered HTTP 503" in shown


def test_the_calls_of_one_decision_run_side_by_side() -> None:
    with Receiver(delay=1.0) as slow:
        calls = [
            act.CallWebhook(name=f"h{i}", type="Event", url=slow.url(f"/h{i}"), timeout_seconds=5, gate="event",
                            entry="", payload={"i": i})
            for i in range(4)
        ]
        results = caller.call_all(calls, egress=egress_for(slow))
    assert [r.name for _entry, r in results] == ["h0", "h1", "h2", "h3"] and all(r.ok for _e, r in results)
    assert slow.most_in_flight > 1, "one call waited for another to end"
