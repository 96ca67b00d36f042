"""Issue 15: notices of a release reach Slack, Microsoft Teams, Discord, Google Chat and a JSON webhook.

Local receivers on loopback stand in for the providers' incoming webhooks and check each body's
format. The URLs are the operator's (files, as a mounted Secret would hold them); a release only
names receivers, and the URLs show nowhere: not in status, Events or the operator's log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devcluster import Cluster

from tests.e2e.helpers import example_release, get, patch_spec, release_phase, wait_for
from tests.e2e.loopback import Answer, LoopbackServer
from tests.e2e.releases import ReleaseStarter

pytestmark = pytest.mark.usefixtures("invariant_monitor")

PROVIDERS = ("Slack", "MSTeams", "Discord", "GoogleChat", "Webhook")
TOKEN = "T0KEN-in-the-webhook-url-5c1d"


@pytest.fixture
def receiver() -> Iterator[LoopbackServer]:
    with LoopbackServer(lambda _: Answer(200, b"ok")) as server:
        yield server


def notices(server: LoopbackServer, provider: str) -> list[dict[str, Any]]:
    return [json.loads(s.body) for s in server.seen if s.path == f"/{provider.lower()}/{TOKEN}"]


def progressing(server: LoopbackServer, provider: str) -> list[dict[str, Any]]:
    """The provider's notices of the release becoming Progressing (each format says the reason)."""
    return [n for n in notices(server, provider) if "Progressing" in json.dumps(n)]


def receiver_flags(server: LoopbackServer, tmp_path: Path) -> list[str]:
    flags = []
    for provider in PROVIDERS:
        url_file = tmp_path / f"{provider.lower()}-url"
        url_file.write_text(server.url(f"/{provider.lower()}/{TOKEN}") + "\n")
        flags += ["--notification-receiver", f"name={provider.lower()},type={provider},url-file={url_file}"]
    return flags


def check_format(provider: str, notice: dict[str, Any], *, reason: str) -> None:
    """The body is what the provider's webhook takes, and it names the release, the reason and the versions."""
    match provider:
        case "Slack":
            assert notice["text"].startswith("reviews in ") and f": {reason}\n" in notice["text"]
            assert {f["title"] for f in notice["attachments"][0]["fields"]} >= {"Versions", "Weights", "Phase"}
        case "MSTeams":
            (card,) = notice["attachments"]
            assert notice["type"] == "message" and card["contentType"] == "application/vnd.microsoft.card.adaptive"
            assert card["content"]["type"] == "AdaptiveCard" and reason in card["content"]["body"][0]["text"]
        case "Discord":
            assert reason in notice["embeds"][0]["title"] and isinstance(notice["embeds"][0]["color"], int)
        case "GoogleChat":
            assert set(notice) == {"text"} and reason in notice["text"] and "stable v1, canary v2" in notice["text"]
        case "Webhook":
            assert (notice["name"], notice["reason"]) == ("reviews", reason)
            assert (notice["stable"]["version"], notice["canary"]["version"]) == ("v1", "v2")


def test_every_provider_gets_the_notices_of_a_release_in_its_format_and_the_url_shows_nowhere(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, receiver: LoopbackServer, tmp_path: Path
) -> None:
    ns = namespace
    release = example_release("canary-weight.yaml")
    release["spec"]["notifications"] = {"receivers": [p.lower() for p in PROVIDERS]}
    started = progressing_release(release, operator_args=receiver_flags(receiver, tmp_path))

    for provider in PROVIDERS:
        wait_for(lambda p=provider: progressing(receiver, p), timeout=30, what=f"a notice to {provider}")  # type: ignore[misc]
        check_format(provider, progressing(receiver, provider)[0], reason="Progressing")
    webhook = progressing(receiver, "Webhook")[0]
    assert (webhook["phase"], webhook["severity"]) == ("Progressing", "Info")
    assert (webhook["stable"]["weight"], webhook["canary"]["weight"]) == (70, 30)

    # Only errors from now on: completing the release is no error, so nobody hears of it.
    patch_spec(cluster, ns, "reviews", {"notifications": {"severity": "Error"}, "takeOver": "v2", "offline": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), timeout=60, what="Completed")
    assert not any(n["reason"] in ("TakenOver", "Completed") for n in notices(receiver, "Webhook"))

    shown = json.dumps(get(cluster, "canaryrelease", "reviews", ns)) + started.operator.logs()
    shown += cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert TOKEN not in shown
    assert "notification sent" in started.operator.logs()


def test_a_release_that_names_no_receivers_gets_the_default_ones_and_a_dead_receiver_is_retried_then_left(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, tmp_path: Path
) -> None:
    answers = iter([Answer(503), Answer(503), Answer(200, b"ok")])
    with LoopbackServer(lambda _: next(answers, Answer(200, b"ok"))) as flaky, \
            LoopbackServer(lambda _: Answer(404)) as gone:
        (tmp_path / "flaky").write_text(flaky.url("/hook"))
        (tmp_path / "gone").write_text(gone.url("/hook"))
        (tmp_path / "opt-in").write_text(gone.url("/opt-in"))
        flags = [
            "--notification-receiver", f"name=flaky,type=Webhook,url-file={tmp_path / 'flaky'},default=true",
            "--notification-receiver", f"name=gone,type=Slack,url-file={tmp_path / 'gone'},default=true",
            "--notification-receiver", f"name=opt-in,type=Slack,url-file={tmp_path / 'opt-in'}",
        ]
        started = progressing_release(operator_args=flags)
        # Two 503s, then the third attempt is taken; a 404 is not retried.
        wait_for(lambda: any(s.path == "/hook" and s.body for s in flaky.seen[2:]), timeout=30, what="a retried notice")
        wait_for(lambda: "notification not sent" in started.operator.logs(), timeout=30, what="the 404 logged")
        sent = [s.body for s in gone.seen if s.path == "/hook"]
        assert sent and len(set(sent)) == len(sent), "a notice answered 404 was sent again"
        assert not [s for s in gone.seen if s.path == "/opt-in"], "a receiver no release named got a notice"
    assert "the receiver answered HTTP 404" in started.operator.logs()
