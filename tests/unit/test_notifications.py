"""Notices: severity, who hears what, the receiver flag, and each provider's body."""

from __future__ import annotations

import dataclasses
import json

import pytest
from istio_canary.models.notifications import NotificationsSpec, Severity
from istio_canary.notifications import formats
from istio_canary.notifications.notice import (
    REPEAT_SECONDS,
    Notice,
    Receiver,
    Told,
    chosen,
    parse_receiver,
    severity_of,
)

NOTICE = Notice(
    namespace="bookinfo", release="reviews", service="reviews", stable="v1", canary="v2", phase="Progressing",
    reason="AnalysisStep", message="step 2: 25% to v2", severity=Severity.INFO, stable_weight=75, canary_weight=25,
    time="2026-12-04T18:00:00+00:00",
)
RECEIVERS = [
    Receiver("team", "Slack", "/u", Severity.INFO, default=True),
    Receiver("oncall", "MSTeams", "/u", Severity.ERROR, default=True),
    Receiver("audit", "Webhook", "/u"),
]


def test_failures_and_rollbacks_are_errors_other_warnings_warnings_and_the_rest_info() -> None:
    assert severity_of("Warning", "ForeignObject", phase="Failed") is Severity.ERROR
    assert severity_of("Warning", "AnalysisFailed", phase="Progressing") is Severity.ERROR
    assert severity_of("Warning", "NoData", phase="Progressing") is Severity.WARNING
    assert severity_of("Normal", "Completed", phase="Completed") is Severity.INFO


def test_a_release_hears_on_its_default_receivers_or_those_it_names_above_both_severities() -> None:
    assert [r.name for r in chosen(RECEIVERS, None, Severity.INFO)] == ["team"]
    assert [r.name for r in chosen(RECEIVERS, None, Severity.ERROR)] == ["team", "oncall"]
    named = NotificationsSpec(receivers=["audit", "oncall"])
    assert [r.name for r in chosen(RECEIVERS, named, Severity.WARNING)] == ["audit"]
    assert chosen(RECEIVERS, NotificationsSpec(receivers=[]), Severity.ERROR) == []
    assert chosen(RECEIVERS, NotificationsSpec(severity=Severity.ERROR), Severity.WARNING) == []


def test_a_repeated_event_is_told_once_an_hour_and_anything_new_at_once() -> None:
    told = Told()
    assert told.is_news(NOTICE, now=0.0)
    assert not told.is_news(NOTICE, now=10.0)
    assert told.is_news(dataclasses.replace(NOTICE, stable_weight=50, canary_weight=50), now=11.0)
    assert told.is_news(dataclasses.replace(NOTICE, reason="Progressing"), now=12.0)
    assert told.is_news(NOTICE, now=13.0)  # the weights changed back: news again
    assert not told.is_news(NOTICE, now=13.0 + REPEAT_SECONDS - 1)
    assert told.is_news(NOTICE, now=13.0 + REPEAT_SECONDS)


def test_the_receiver_flag_is_parsed_and_mistakes_are_named() -> None:
    parsed = parse_receiver("name=team,type=Discord,url-file=/etc/u,severity=warning,default=true")
    assert parsed == Receiver("team", "Discord", "/etc/u", Severity.WARNING, default=True)
    with pytest.raises(ValueError, match="needs url-file"):
        parse_receiver("name=team,type=Slack")
    with pytest.raises(ValueError, match="type 'Pager' is none of"):
        parse_receiver("name=team,type=Pager,url-file=/u")
    with pytest.raises(ValueError, match="'colour=red' is not one of"):
        parse_receiver("name=team,type=Slack,url-file=/u,colour=red")


@pytest.mark.parametrize("provider", ["Slack", "MSTeams", "Discord", "GoogleChat", "Webhook"])
def test_every_body_is_json_that_names_the_release_the_reason_the_versions_and_the_weights(provider: str) -> None:
    text = json.dumps(formats.body(provider, NOTICE))
    for said in ("reviews in bookinfo", "AnalysisStep", "step 2: 25% to v2"):
        assert said in text or provider == "Webhook", (provider, said)
    assert ("v1 75% / v2 25%" in text) or (provider == "Webhook" and '"weight": 75' in text)


def test_an_unknown_provider_has_no_format() -> None:
    with pytest.raises(ValueError, match="no notification format"):
        formats.body("Pager", NOTICE)
