"""kubectl-canary's views, rendered to plain text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from istio_canary.plugin.views import RECENT_EVENTS, age, render_releases, render_status, weight_bar
from rich.console import Console, RenderableType

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)


def text(renderable: RenderableType) -> str:
    console = Console(width=160, record=True, color_system=None, force_terminal=False)
    console.print(renderable)
    return console.export_text()


def release(name: str = "reviews", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "bookinfo",
            "uid": "u-1",
            "creationTimestamp": "2026-01-02T11:00:00Z",
        },
        "spec": {
            "service": "reviews",
            "stable": {"version": "v1"},
            "canary": {"version": "v2"},
            "strategy": "Canary",
            "traffic": {"weight": 30},
        },
        "status": status,
    }


def event(reason: str, when: str, kind: str = "Normal") -> dict[str, Any]:
    return {
        "metadata": {"name": reason, "creationTimestamp": when},
        "type": kind,
        "reason": reason,
        "message": f"{reason} happened",
        "lastTimestamp": when,
    }


def test_weight_bar_fills_in_proportion_and_shows_the_percent() -> None:
    assert weight_bar(25, width=8) == "██······  25%"
    assert weight_bar(0, width=4) == "····   0%"
    assert weight_bar(100, width=4) == "████ 100%"


def test_weight_bar_clamps_out_of_range_values() -> None:
    assert weight_bar(130, width=4) == "████ 100%"


def test_age_reads_like_kubectl() -> None:
    assert age("2026-01-02T11:59:15Z", now=NOW) == "45s"
    assert age("2026-01-02T11:48:00Z", now=NOW) == "12m"
    assert age("2026-01-02T09:00:00Z", now=NOW) == "3h"
    assert age("2025-12-29T12:00:00Z", now=NOW) == "4d"
    assert age(None, now=NOW) == "-"


def test_the_releases_table_shows_phase_and_weights_read_back_from_status() -> None:
    table = render_releases(
        [release(phase="Progressing", traffic={"stable": 70, "canary": 30})],
        now=NOW,
        all_namespaces=False,
    )
    out = text(table)

    assert "NAMESPACE" not in out
    row = next(line for line in out.splitlines() if line.startswith("reviews"))
    assert row.split() == ["reviews", "Canary", "Progressing", "v1", "70%", "v2", "30%", "-", "1h"]


def test_a_release_without_status_shows_pending_and_no_weights() -> None:
    out = text(render_releases([release()], now=NOW, all_namespaces=True))

    row = next(line for line in out.splitlines() if line.startswith("bookinfo"))
    assert row.split()[:6] == ["bookinfo", "reviews", "Canary", "Pending", "v1", "-"]


def test_status_shows_phase_weight_bars_versions_and_metrics() -> None:
    body = release(
        phase="Progressing",
        message="30% of requests go to v2",
        traffic={"stable": 70, "canary": 30},
        versions=[
            {
                "version": "v1",
                "role": "stable",
                "deployment": "reviews-v1",
                "replicas": 2,
                "readyReplicas": 2,
                "weight": 70,
                "metrics": {
                    "requestRate": 12.5,
                    "successRate": 99.9,
                    "latencyP50Ms": 8.0,
                    "latencyP99Ms": 41.0,
                },
            },
            {
                "version": "v2",
                "role": "canary",
                "deployment": "reviews-v2",
                "replicas": 1,
                "readyReplicas": 0,
                "weight": 30,
            },
        ],
    )
    out = text(render_status(body, [], now=NOW))

    assert "bookinfo/reviews  Progressing" in out
    assert "30% of requests go to v2" in out
    assert f"stable v1          {weight_bar(70, width=40)}" in out
    assert f"canary v2          {weight_bar(30, width=40)}" in out
    v1 = next(line for line in out.splitlines() if "reviews-v1" in line)
    assert "2/2" in v1 and "12.50" in v1 and "99.90%" in v1 and "8ms" in v1 and "41ms" in v1
    v2 = next(line for line in out.splitlines() if "reviews-v2" in line)
    assert "0/1" in v2 and v2.count(" - ") >= 3


def test_status_lists_only_the_most_recent_events_newest_last() -> None:
    events = [event(f"Step{i:02d}", f"2026-01-02T11:{i:02d}:00Z") for i in range(RECENT_EVENTS + 3)]
    events.append(event("RolledBack", "2026-01-02T11:59:00Z", kind="Warning"))
    out = text(render_status(release(phase="Aborted"), list(reversed(events)), now=NOW))

    assert "Step00" not in out and "Step03" not in out
    assert out.index("Step12") < out.index("RolledBack")
    assert "Warning" in out and "RolledBack happened" in out


def test_status_names_the_verbs_already_set_in_the_spec() -> None:
    body = release(phase="TakenOver")
    body["spec"].update(takeOver="v2", offline=True)

    assert "takeOver=v2 offline" in text(render_status(body, [], now=NOW))


def test_status_marks_a_provided_canary_and_lists_every_virtual_service_the_release_splits() -> None:
    body = release(
        phase="Progressing",
        versions=[
            {"version": "v1", "role": "stable", "deployment": "reviews-v1", "managed": False},
            {"version": "v2", "role": "canary", "deployment": "reviews-v2", "managed": False},
        ],
        routing=[
            {"kind": "VirtualService", "namespace": "bookinfo", "name": "reviews", "stable": 70, "canary": 30},
            {"kind": "VirtualService", "namespace": "istio-system", "name": "public", "stable": 70, "canary": 30},
        ],
    )
    out = text(render_status(body, [], now=NOW))
    assert "reviews-v2 (yours)" in out and "reviews-v1 (yours)" not in out
    public = next(line for line in out.splitlines() if "istio-system/public" in line)
    assert "70%" in public and "30%" in public
    alone = release(
        phase="Progressing", routing=[{"kind": "VirtualService", "namespace": "bookinfo", "name": "reviews"}]
    )
    assert "Routing" not in text(render_status(alone, [], now=NOW))
