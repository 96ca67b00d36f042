"""What the release list and a release page say, from a status the API server stored: weights,
phase, conditions on the timeline and the analysis' verdicts step by step. No operator runs:
the status is written through the status subresource, as the operator writes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from devcluster import Cluster

from tests.e2e.browser import Page, browser, script_errors
from tests.e2e.dashboard import Client, DashboardProcess, dashboard, release, user_token

pytestmark = pytest.mark.e2e
__all__ = ["browser", "dashboard", "release"]  # fixtures

LOOK = {"time": "2026-01-01T11:59:30Z", "step": 0, "weight": 10, "verdict": "Pass", "reason": "canary no worse",
        "stableRequests": 900.0, "stableErrors": 1.0, "canaryRequests": 100.0, "canaryErrors": 0.0}  # fmt: skip
STATUS = {
    "phase": "Progressing",
    "message": "80% to v1, 20% to v2",
    "traffic": {"stable": 80, "canary": 20},
    "successRate": 99.9,
    "conditions": [{"type": "Ready", "status": "False", "reason": "Progressing", "message": "moving",
                    "lastTransitionTime": "2026-01-01T11:59:00Z"}],
    "analysis": {"step": 1, "weight": 20, "lastVerdict": "Pass", "history": [LOOK]},
}


def test_the_list_and_the_release_page_show_the_stored_status_and_verdicts(
    cluster: Cluster, namespace: str, dashboard: DashboardProcess, release: dict[str, Any]
) -> None:
    cluster.kubectl("patch", "canaryrelease", "reviews", "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", json.dumps({"status": STATUS}))  # fmt: skip
    reader = Client(dashboard.url)
    assert reader.sign_in(user_token(cluster, namespace, "reader", verbs=["get", "list"], events=True)).status == 200

    rows = reader.get("/api/releases").json()["releases"]
    (row,) = [r for r in rows if r["namespace"] == namespace]
    assert (row["phase"], row["stable"], row["canary"]) == (
        "Progressing", {"version": "v1", "weight": 80}, {"version": "v2", "weight": 20}
    )  # fmt: skip
    assert row["health"] == {"state": "ok", "successRate": 99.9}

    page = reader.get(f"/api/releases/{namespace}/reviews").json()
    assert page["message"] == "80% to v1, 20% to v2"
    assert page["verdicts"] == [{key: LOOK.get(key) for key in (*LOOK, "stableLatencyMs", "canaryLatencyMs")}]
    assert {"source": "condition", "reason": "Ready=False: Progressing", "message": "moving",
            "time": "2026-01-01T11:59:00Z"} in page["timeline"]  # fmt: skip
    metrics = reader.get(f"/api/releases/{namespace}/reviews/metrics").json()
    assert metrics["prometheus"] == "not configured"


def test_the_release_page_shows_the_verdicts_step_by_step_in_the_browser(
    cluster: Cluster, namespace: str, dashboard: DashboardProcess, release: dict[str, Any], browser: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    cluster.kubectl("patch", "canaryrelease", "reviews", "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", json.dumps({"status": STATUS}))  # fmt: skip
    page = Page(browser, dashboard.url, tmp_path)
    page.sign_in(user_token(cluster, namespace, "reader", verbs=["get", "list"], events=True))
    page.open(f"/releases/{namespace}/reviews")
    (verdict,) = page.until(lambda d: page.css("#verdicts tr"), what="the verdicts")
    cells = [cell.text for cell in verdict.find_elements("css selector", "td")]
    assert cells[:5] == ["2026-01-01 11:59:30", "0", "10", "Pass", "canary no worse"]
    assert "Ready=False: Progressing" in page.css("#timeline")[0].text
    assert page.css("#weights")[0].text.startswith("v1 80% / v2 20%")
    assert script_errors(browser) == []
