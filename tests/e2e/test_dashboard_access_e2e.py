"""The dashboard lets Kubernetes decide: no session, a bad token, a missing CSRF token or a
forbidden verb is answered 401 or 403 on every endpoint, and nothing changes. Plain HTTP, no
browser and no operator: the release is only an object here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from devcluster import Cluster
from istio_canary.dashboard.api import ROUTES

from tests.e2e.dashboard import Client, DashboardProcess, dashboard, release, user_token
from tests.e2e.helpers import get, wait_for

pytestmark = pytest.mark.e2e
__all__ = ["dashboard", "release"]  # fixtures

ACTIONS: dict[str, dict[str, object]] = {
    "set-weight": {"weight": 80},
    "take-over": {"version": "v2"},
    "offline": {},
    "abort": {},
    "pause": {},
    "resume": {},
}
PAGES = ("/", "/releases/{namespace}/reviews", "/topology/{namespace}")


def endpoints(namespace: str) -> list[tuple[str, str, dict[str, object] | None]]:
    """Every API route, filled in for the test's release; each action verb on its own."""
    out: list[tuple[str, str, dict[str, object] | None]] = []
    for method, path, _handler in ROUTES:
        filled = path.replace("{namespace}", namespace).replace("{name}", "reviews")
        if method == "POST":
            out += [(method, filled.replace("{verb}", verb), body) for verb, body in ACTIONS.items()]
        else:
            out.append((method, filled, None))
    return [*out, ("GET", "/api/session", None), ("POST", "/api/logout", {})]


def spec_of(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return dict((get(cluster, "canaryrelease", "reviews", namespace) or {})["spec"])


def test_without_a_session_every_endpoint_answers_401_pages_send_to_sign_in_and_nothing_changes(
    cluster: Cluster, namespace: str, dashboard: DashboardProcess, release: dict[str, object]
) -> None:
    anonymous = Client(dashboard.url)
    for method, path, body in endpoints(namespace):
        answer = anonymous.request(method, path, body)
        assert answer.status == 401, (method, path, answer.status)
    for page in PAGES:
        answer = anonymous.get(page.format(namespace=namespace))
        assert (answer.status, answer.headers["Location"]) == (303, "/login"), page
    assert anonymous.get("/login").status == 200
    assert spec_of(cluster, namespace) == release["spec"]


def test_a_bad_or_missing_token_opens_no_session(dashboard: DashboardProcess, namespace: str) -> None:
    client = Client(dashboard.url)
    assert client.sign_in("not-a-token").status == 401
    assert client.sign_in("").status == 401
    assert client.request("POST", "/api/login", {"token": 42}).status == 401
    assert client.request("POST", "/api/login", b"token=x", headers={"Content-Type": "text/plain"}).status == 415
    assert list(client.cookies) == []
    assert client.get("/api/releases").status == 401


def test_a_user_who_may_only_get_sees_the_release_and_is_refused_everything_else(
    cluster: Cluster, namespace: str, dashboard: DashboardProcess, release: dict[str, object]
) -> None:
    viewer = Client(dashboard.url)
    assert viewer.sign_in(user_token(cluster, namespace, "viewer", verbs=["get"])).status == 200
    detail = viewer.get(f"/api/releases/{namespace}/reviews")
    assert detail.status == 200 and detail.json()["service"] == "reviews"
    assert viewer.get(f"/api/releases/{namespace}/reviews/metrics").status == 200
    # list is not granted: the release list leaves the namespace out, the topology refuses it.
    assert viewer.get("/api/releases").json()["namespaces"] == []
    assert viewer.get(f"/api/topology/{namespace}").status == 403
    for verb, body in ACTIONS.items():
        answer = viewer.post(f"/api/releases/{namespace}/reviews/{verb}", body)
        assert answer.status == 403, (verb, answer.status, answer.body)
    assert spec_of(cluster, namespace) == release["spec"]


def test_a_user_without_a_role_is_refused_every_read(
    cluster: Cluster, namespace: str, dashboard: DashboardProcess, release: dict[str, object]
) -> None:
    nobody = Client(dashboard.url)
    assert nobody.sign_in(user_token(cluster, namespace, "nobody", verbs=[])).status == 200
    for method, path, body in endpoints(namespace):
        if path.startswith(("/api/releases/", "/api/topology/")):
            assert nobody.request(method, path, body).status == 403, (method, path)
    assert nobody.get("/api/releases").json() == {"releases": [], "namespaces": []}
    assert spec_of(cluster, namespace) == release["spec"]


def test_an_action_needs_the_csrf_token_and_then_patches_as_the_user_with_an_event(
    cluster: Cluster, namespace: str, dashboard: DashboardProcess, release: dict[str, object]
) -> None:
    token = user_token(cluster, namespace, "editor", verbs=["get", "list", "patch"], events=True)
    editor = Client(dashboard.url)
    assert editor.sign_in(token).status == 200
    path = f"/api/releases/{namespace}/reviews/set-weight"
    assert editor.post(path, {"weight": 80}, csrf="").status == 403
    assert editor.post(path, {"weight": 80}, csrf="forged").status == 403
    assert spec_of(cluster, namespace) == release["spec"]
    assert editor.post(path, {"weight": 130}).status == 400  # the plugin's own check
    answer = editor.post(path, {"weight": 80})
    assert (answer.status, answer.json()) == (200, {"applied": "traffic.weight=80"})
    assert spec_of(cluster, namespace)["traffic"]["weight"] == 80
    detail = wait_for(
        lambda: [e for e in editor.get(f"/api/releases/{namespace}/reviews").json()["timeline"]
                 if e["reason"] == "DashboardAction"],
        timeout=20, what="the action's Event",
    )
    assert detail[0]["message"] == f"system:serviceaccount:{namespace}:editor set traffic.weight=80 from the dashboard"
    assert editor.post("/api/logout", {}).status == 200
    assert editor.get("/api/releases").status == 401


def test_the_session_cookie_is_secure_httponly_and_strict_and_the_token_is_shown_nowhere(
    cluster: Cluster, namespace: str, release: dict[str, object], tmp_path: Path
) -> None:
    token = user_token(cluster, namespace, "reader", verbs=["get", "list"], events=True)
    server = DashboardProcess(cluster, log_path=tmp_path / "secure.log", insecure_cookies=False).start()
    try:
        client = Client(server.url)
        answer = client.request("POST", "/api/login", {"token": token})
        cookie = answer.headers["Set-Cookie"]
        assert answer.status == 200
        assert all(flag in cookie for flag in ("HttpOnly", "Secure", "SameSite=Strict")), cookie
        assert token not in answer.body.decode() and token not in cookie
        # The browser would not send a Secure cookie over plain HTTP; send it by hand here.
        session = cookie.split(";")[0]
        pages = [client.request("GET", p, headers={"Cookie": session}) for p in
                 ("/", f"/api/releases/{namespace}/reviews", "/api/releases", "/api/session")]  # fmt: skip
        assert [p.status for p in pages] == [200, 200, 200, 200]
        assert all(token not in p.body.decode() for p in pages)
        assert pages[0].headers["Content-Security-Policy"].startswith("default-src 'self'")
    finally:
        server.stop()
    assert token not in server.logs()
