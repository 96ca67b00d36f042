"""The dashboard's guards without a cluster: a fake API server answers the reviews."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer
from istio_canary import cli
from istio_canary.dashboard import access
from istio_canary.dashboard.api import ROUTES
from istio_canary.dashboard.kube import ApiError, KubeGateway, _user_configuration
from istio_canary.dashboard.server import Settings, build_app
from istio_canary.dashboard.sessions import User

TOKEN = "good-token-0123456789"
RELEASE = {"metadata": {"name": "reviews", "namespace": "bookinfo"},
           "spec": {"service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2"}}}  # fmt: skip


class FakeKube:
    """Accepts one token; allows what ``allowed`` lists as (verb, namespace); records patches."""

    def __init__(self, allowed: set[tuple[str, str]]) -> None:
        self.allowed, self.patches, self.events = allowed, [], []  # type: ignore[var-annotated]

    async def review_token(self, token: str) -> User | None:
        return User(username="alice") if token == TOKEN else None

    async def can(self, user: User, check: access.Check) -> bool:
        return (check.verb, check.namespace) in self.allowed

    async def list_releases(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [RELEASE]

    async def get_release(self, namespace: str, name: str) -> dict[str, Any]:
        return RELEASE

    async def release_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return []

    async def patch_release_as(self, token: str, *, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.patches.append((token, patch))

    async def record_action(self, release: dict[str, Any], **details: Any) -> None:
        self.events.append(details["change"])


async def client_for(kube: FakeKube) -> TestClient[Any, Any]:
    app = build_app(kube=cast(KubeGateway, kube), prometheus=None, settings=Settings(secure_cookies=False))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def anonymous() -> AsyncIterator[TestClient[Any, Any]]:
    client = await client_for(FakeKube(set()))
    yield client
    await client.close()


def filled(path: str) -> str:
    return path.replace("{namespace}", "bookinfo").replace("{name}", "reviews").replace("{verb}", "abort")


async def test_every_api_route_needs_a_session(anonymous: TestClient[Any, Any]) -> None:
    for method, path, _handler in ROUTES:
        answer = await anonymous.request(method, filled(path), json={})
        assert answer.status == 401, path


async def test_a_page_without_a_session_redirects_to_sign_in_with_security_headers(
    anonymous: TestClient[Any, Any],
) -> None:
    answer = await anonymous.get("/releases/bookinfo/reviews", allow_redirects=False)
    assert (answer.status, answer.headers["Location"]) == (303, "/login")
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


async def test_a_post_that_is_not_json_is_refused_before_anything_else(anonymous: TestClient[Any, Any]) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = await anonymous.post("/api/login", data="token=" + TOKEN, headers=form)
    assert answer.status == 415


async def test_a_sign_in_from_another_origin_is_refused(anonymous: TestClient[Any, Any]) -> None:
    answer = await anonymous.post("/api/login", json={"token": TOKEN}, headers={"Origin": "https://evil.example"})
    assert answer.status == 403


async def test_an_action_needs_csrf_and_patch_rights_and_then_sends_the_users_token() -> None:
    kube = FakeKube({("get", "bookinfo")})
    client = await client_for(kube)
    try:
        signed_in = await client.post("/api/login", json={"token": TOKEN})
        csrf = (await signed_in.json())["csrf"]
        path = "/api/releases/bookinfo/reviews/take-over"
        assert (await client.post(path, json={"version": "v2"})).status == 403  # no CSRF token
        assert (await client.post(path, json={"version": "v2"}, headers={"X-CSRF-Token": csrf})).status == 403
        kube.allowed.add(("patch", "bookinfo"))
        done = await client.post(path, json={"version": "v2"}, headers={"X-CSRF-Token": csrf})
        assert (done.status, await done.json()) == (200, {"applied": 'takeOver="v2"'})
        assert kube.patches == [(TOKEN, {"spec": {"takeOver": "v2"}})] and kube.events == ['takeOver="v2"']
    finally:
        await client.close()


async def test_a_failing_api_server_call_is_a_502_not_a_traceback() -> None:
    class Broken(FakeKube):
        async def list_releases(self, namespace: str | None = None) -> list[dict[str, Any]]:
            raise ApiError(500, "etcd is down")

    client = await client_for(Broken(set()))
    try:
        await client.post("/api/login", json={"token": TOKEN})
        answer = await client.get("/api/releases")
        assert (answer.status, await answer.json()) == (502, {"error": "the API server answered 500"})
    finally:
        await client.close()


def test_the_users_client_carries_the_users_token_and_none_of_the_servers_credentials() -> None:
    from kubernetes import client as k8s

    base = k8s.Configuration()
    base.host, base.ssl_ca_cert = "https://127.0.0.1:6443", "/ca.crt"
    base.cert_file, base.key_file, base.api_key = "/admin.crt", "/admin.key", {"authorization": "Bearer admin"}
    mine = _user_configuration(base, TOKEN)
    assert (mine.host, mine.ssl_ca_cert) == (base.host, base.ssl_ca_cert)
    assert (mine.cert_file, mine.key_file) == (None, None)
    assert mine.auth_settings()["BearerToken"]["value"] == f"Bearer {TOKEN}"
    assert base.api_key == {"authorization": "Bearer admin"}


def test_insecure_cookies_are_refused_off_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dashboard", "--host", "0.0.0.0", "--insecure-cookies"]) == 2
    assert "loopback" in capsys.readouterr().err


async def test_a_token_the_api_server_stops_accepting_ends_the_session() -> None:
    class Revoking(FakeKube):
        accepted = True

        async def review_token(self, token: str) -> User | None:
            return User(username="alice") if self.accepted and token == TOKEN else None

    kube = Revoking({("list", "bookinfo")})
    app = build_app(kube=cast(KubeGateway, kube), prometheus=None,
                    settings=Settings(secure_cookies=False, token_review_seconds=0))  # fmt: skip
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        await client.post("/api/login", json={"token": TOKEN})
        assert (await client.get("/api/releases")).status == 200
        kube.accepted = False
        assert (await client.get("/api/releases")).status == 401
        kube.accepted = True
        assert (await client.get("/api/releases")).status == 401  # the session is gone for good
    finally:
        await client.close()
