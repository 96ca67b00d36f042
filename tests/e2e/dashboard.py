"""The dashboard as a process of its own, users with a Role and a token, and a plain HTTP client."""

from __future__ import annotations

import http.cookiejar
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devcluster import Cluster
from devcluster.prometheus import free_port

from tests.e2e.helpers import apply, example_release, get, wait_for
from tests.e2e.processes import LoggedProcess

RELEASES = {"apiGroups": ["releases.istio-canary.io"], "resources": ["canaryreleases"]}


class DashboardProcess(LoggedProcess):
    """``istio-canary-operator dashboard`` on a free loopback port, with the admin kubeconfig."""

    def __init__(self, cluster: Cluster, *, log_path: Path, prometheus_url: str | None = None,
                 insecure_cookies: bool = True) -> None:  # fmt: skip
        self.cluster, self.log_path = cluster, log_path
        self.prometheus_url, self.insecure_cookies = prometheus_url, insecure_cookies
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> DashboardProcess:
        exe = Path(sys.executable).parent / "istio-canary-operator"
        argv = [str(exe), "dashboard", "--kubeconfig", self.cluster.kubeconfig, "--port", str(self.port),
                "--log-format", "json", "--rate-window", "10", "--chart-minutes", "3"]  # fmt: skip
        if self.insecure_cookies:
            argv.append("--insecure-cookies")
        if self.prometheus_url:
            argv += ["--prometheus-url", self.prometheus_url]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        wait_for(self._healthy, timeout=60, what=f"dashboard on {self.url}")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the dashboard exited: {self.logs()}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False


def user_token(cluster: Cluster, namespace: str, account: str, *, verbs: list[str], events: bool = False) -> str:
    """A ServiceAccount's token; its Role allows ``verbs`` on canaryreleases (and listing Events)."""
    cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    rules = [{**RELEASES, "verbs": verbs}] if verbs else []
    if events:
        rules.append({"apiGroups": [""], "resources": ["events"], "verbs": ["list"]})
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": account, "namespace": namespace}, "rules": rules}  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps(role))
    cluster.kubectl("create", "rolebinding", account, f"--role={account}",
                    f"--serviceaccount={namespace}:{account}", "-n", namespace)  # fmt: skip
    return cluster.kubectl("create", "token", account, "-n", namespace).stdout.strip()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """A browser without JavaScript: a cookie jar, no redirects followed, the CSRF token kept."""

    def __init__(self, base_url: str) -> None:
        self.base_url, self.csrf = base_url, ""
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect())

    def request(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None) -> Answer:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        sent = {"Content-Type": "application/json"} if data is not None else {}
        sent.update(headers or {})
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=sent)
        try:
            with self._opener.open(req, timeout=30) as answer:
                return Answer(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as refused:
            return Answer(refused.code, refused.headers, refused.read())

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, body: Any, *, csrf: str | None = None) -> Answer:
        return self.request("POST", path, body, headers={"X-CSRF-Token": self.csrf if csrf is None else csrf})

    def sign_in(self, token: str) -> Answer:
        answer = self.request("POST", "/api/login", {"token": token})
        if answer.status == 200:
            self.csrf = answer.json()["csrf"]
        return answer


@pytest.fixture
def dashboard(cluster: Cluster, tmp_path: Path) -> Iterator[DashboardProcess]:
    """The dashboard without Prometheus (empty charts), stopped after the test."""
    server = DashboardProcess(cluster, log_path=tmp_path / "dashboard.log").start()
    yield server
    server.stop()


@pytest.fixture
def release(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """The tutorial's release as an object only (no operator runs), as stored."""
    apply(cluster, namespace, example_release())
    stored = get(cluster, "canaryrelease", "reviews", namespace)
    assert stored is not None
    return stored
