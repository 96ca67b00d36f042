"""The dashboard in a real browser (Debian's headless Chromium, driven by Selenium through
Debian's chromedriver): the Bookinfo release on the local control plane with the mesh
simulator's traffic from productpage, scraped by Prometheus. Screenshots of each page go to
the test's tmp path."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from devcluster import Cluster, PrometheusServer
from meshsim.simulator import Simulator

from tests.e2e.browser import Page, browser, script_errors
from tests.e2e.dashboard import DashboardProcess, user_token
from tests.e2e.helpers import get, patch_spec, route_weights, wait_for
from tests.e2e.releases import ReleaseStarter

pytestmark = pytest.mark.e2e
__all__ = ["browser"]  # fixture

def points(page: Page, chart: str, version: str) -> int:
    items = page.css(f"#chart-{chart} li[data-version='{version}']")
    return int(items[0].get_attribute("data-points")) if items else 0


def _listed(page: Page, release: str, phase: str, _driver: Any) -> list[Any]:
    return page.css(f"tr[data-release='{release}'][data-phase='{phase}']")


def canary_weight(cluster: Cluster, namespace: str) -> int | None:
    vs = get(cluster, "virtualservice", "reviews", namespace)
    return route_weights(vs)[0].get("v2") if vs else None


def test_the_dashboard_shows_the_bookinfo_release_and_takes_it_over_as_an_allowed_user_only(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator,
    prometheus: PrometheusServer, browser: Any, tmp_path: Path,
) -> None:  # fmt: skip
    progressing_release()
    mesh.set_load(namespace=namespace, service="reviews", rps=40, source="productpage-v1")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    server = DashboardProcess(cluster, log_path=tmp_path / "dashboard.log", prometheus_url=prometheus.url).start()
    try:
        page = Page(browser, server.url, shots)
        page.sign_in(user_token(cluster, namespace, "operator", verbs=["get", "list", "patch"], events=True))
        shows_the_release_list_charts_and_topology(page, cluster, namespace)
        take_over_moves_traffic(page, cluster, namespace)
        page.sign_in(user_token(cluster, namespace, "viewer", verbs=["get"]))
        a_viewer_sees_the_page_but_may_not_take_over(page, cluster, namespace)
        assert script_errors(browser) == []  # no script failed, no CSP refusal, on any page
    finally:
        server.stop()


def shows_the_release_list_charts_and_topology(page: Page, cluster: Cluster, namespace: str) -> None:
    page.open("/")
    row = page.until(lambda d: page.css(f"tr[data-release='{namespace}/reviews'][data-phase='Progressing']"),
                     what="the release in the list")[0]  # fmt: skip
    assert "v1 70% / v2 30%" in row.text
    page.screenshot("list")
    # The list follows the release without a reload: a pause and a resume from kubectl show up.
    page.driver.execute_script("window.notReloaded = true")
    for policy, phase in (("Paused", "Paused"), ("WaitForWorkloadReady", "Progressing")):
        patch_spec(cluster, namespace, "reviews", {"policy": policy})
        page.until(functools.partial(_listed, page, f"{namespace}/reviews", phase), what=f"the list showing {phase}")
    assert page.driver.execute_script("return window.notReloaded") is True

    page.open(f"/releases/{namespace}/reviews")
    page.until(
        lambda d: all(points(page, chart, v) > 0 for chart in ("requestRate", "successRate", "latencyP99Ms")
                      for v in ("v1", "v2")),
        what="chart points for v1 and v2",
    )
    assert page.css("#phase")[0].text == "Progressing"
    page.screenshot("release")

    page.open(f"/topology/{namespace}")
    edges = page.until(
        lambda d: {(r.get_attribute("data-source"), r.get_attribute("data-target")) for r in page.css("#edges tr")}
        >= {("productpage/v1", "reviews/v1"), ("productpage/v1", "reviews/v2")} or None,
        what="productpage -> reviews v1 and v2",
    )
    assert edges
    labels = browser_node_labels(page)
    assert {"v1 (70%)", "v2 (30%)"} <= labels, labels
    page.screenshot("topology")


def browser_node_labels(page: Page) -> set[str]:
    found = page.driver.execute_script("return window.icoTopology.cy.nodes().map((n) => n.data('label'))")
    return set(found)


def take_over_moves_traffic(page: Page, cluster: Cluster, namespace: str) -> None:
    page.open(f"/releases/{namespace}/reviews")
    page.until(lambda d: page.css("#take-over-canary"), what="the take over button")[0].click()
    result = page.until(lambda d: page.css("#action-result")[0].text, what="the action's answer")
    assert result == "applied: takeOver=\"v2\"", result
    page.until(lambda d: page.css("#phase")[0].text == "TakenOver", what="the page following the release")
    wait_for(lambda: canary_weight(cluster, namespace) == 100, timeout=60, what="v2 at 100% in the VirtualService")
    page.until(lambda d: "DashboardAction" in page.css("#timeline")[0].text, what="the action in the timeline")


def a_viewer_sees_the_page_but_may_not_take_over(page: Page, cluster: Cluster, namespace: str) -> None:
    page.open(f"/releases/{namespace}/reviews")
    page.until(lambda d: page.css("#phase")[0].text == "TakenOver", what="the release page as a viewer")
    page.css("#take-over-stable")[0].click()
    result = page.until(lambda d: page.css("#action-result")[0].text, what="the refusal")
    assert result.startswith("refused (403)"), result
    page.screenshot("forbidden")
    assert (get(cluster, "canaryrelease", "reviews", namespace) or {})["spec"]["takeOver"] == "v2"
    assert canary_weight(cluster, namespace) == 100
