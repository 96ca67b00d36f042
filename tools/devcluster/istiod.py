"""Istio's real istiod (pilot-discovery, built from the istio.io/istio module) beside the local cluster.

It runs out of cluster against the local API server: every port on 127.0.0.1 (free ports, so
two clusters can run side by side), leader election, injection and webhook patching off, a
short debounce, TLS from a throw-away CA made with openssl (server certificate with SAN
IP:127.0.0.1). Its validating webhook is registered with the API server from Istio's own base
chart (rendered by our helm, ``failurePolicy: Fail``), so whatever Istio would refuse is refused
at ``kubectl apply``, as in a real cluster.

The process outlives the Python process that started it (like kwokctl's components); its pid
and ports are kept in a state file, so a later ``up()`` reuses it and ``down()`` stops it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ISTIO_NAMESPACE", "Istiod", "IstiodError"]

ISTIO_NAMESPACE = "istio-system"
WEBHOOK_NAME = "istiod-default-validator"
MESH_CONFIG = """\
# Mesh-wide settings istiod reads at start; the defaults are what a plain install has.
rootNamespace: istio-system
trustDomain: cluster.local
"""


class IstiodError(RuntimeError):
    """istiod could not be started or did not become ready."""


class _Kubectl(Protocol):
    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]: ...


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Istiod:
    """istiod for one local cluster; files live in ``state_dir``."""

    bin_dir: Path
    state_dir: Path
    kubeconfig: str

    @property
    def binary(self) -> Path:
        return self.bin_dir / "pilot-discovery"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "istiod.log"

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._state_file.read_text()))
        except (OSError, ValueError):
            return {}

    @property
    def grpc_address(self) -> str:
        """Plaintext xDS, as a sidecar would connect (host:port)."""
        return f"127.0.0.1:{self.state()['grpc']}"

    @property
    def http_url(self) -> str:
        """istiod's debug and readiness endpoints (/ready, /debug/...)."""
        return f"http://127.0.0.1:{self.state()['http']}"

    def is_up(self) -> bool:
        state = self.state()
        if not state or not _alive(int(state.get("pid", 0))):
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{state['http']}/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    # -- lifecycle ----------------------------------------------------------------------------

    def up(self, cluster: _Kubectl, *, timeout: float = 90) -> None:
        """Start istiod (or reuse a running one) and register its validating webhook."""
        if not self.binary.exists():
            raise IstiodError(f"{self.binary} is missing: run hack/build-controlplane.sh")
        if not self.is_up():
            self.stop()
            self._start(cluster, timeout=timeout)
        self._register_webhook(cluster)

    def _start(self, cluster: _Kubectl, *, timeout: float) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if cluster.kubectl("get", "namespace", ISTIO_NAMESPACE, check=False).returncode != 0:
            cluster.kubectl("create", "namespace", ISTIO_NAMESPACE)
        self._certificates()
        mesh = self.state_dir / "mesh.yaml"
        mesh.write_text(MESH_CONFIG)
        ports = {key: _free_port() for key in ("grpc", "https", "http", "monitoring", "ctrlz")}
        args = [
            str(self.binary), "discovery",
            "--kubeconfig", self.kubeconfig,
            "--meshConfig", str(mesh),
            "--grpcAddr", f"127.0.0.1:{ports['grpc']}",
            "--secureGRPCAddr", "",
            "--httpsAddr", f"127.0.0.1:{ports['https']}",
            "--httpAddr", f"127.0.0.1:{ports['http']}",
            "--monitoringAddr", f"127.0.0.1:{ports['monitoring']}",
            "--ctrlz_port", str(ports["ctrlz"]),
            "--ctrlz_address", "127.0.0.1",
            "--caCertFile", str(self.state_dir / "ca.crt"),
            "--tlsCertFile", str(self.state_dir / "tls.crt"),
            "--tlsKeyFile", str(self.state_dir / "tls.key"),
            "--domain", "cluster.local",
            "--log_output_level", "default:info",
        ]
        env = {
            **os.environ,
            "POD_NAMESPACE": ISTIO_NAMESPACE,
            "POD_NAME": "istiod-local",
            "REVISION": "default",
            "ENABLE_LEADER_ELECTION": "false",
            # Empty names: istiod neither patches webhook configurations nor injects sidecars.
            "VALIDATION_WEBHOOK_CONFIG_NAME": "",
            "INJECTION_WEBHOOK_CONFIG_NAME": "",
            "PILOT_ENABLE_GATEWAY_API": "false",
            "PILOT_DEBOUNCE_AFTER": "10ms",
            "PILOT_DEBOUNCE_MAX": "100ms",
            "JWT_POLICY": "first-party-jwt",
        }
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._state_file.write_text(json.dumps({"pid": proc.pid, **ports}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise IstiodError(f"istiod exited with {proc.returncode}; see {self.log_path}")
            if self.is_up():
                return
            time.sleep(0.5)
        raise IstiodError(f"istiod not ready after {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        pid = int(self.state().get("pid", 0))
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        self._state_file.unlink(missing_ok=True)

    # -- pieces -------------------------------------------------------------------------------

    def _certificates(self) -> None:
        """A CA and a server certificate for 127.0.0.1, made once per cluster."""
        d = self.state_dir
        if (d / "tls.crt").exists() and (d / "ca.crt").exists():
            return

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=istio-canary-local-ca",
                "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"))
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=istiod.istio-system.svc",
                "-keyout", str(d / "tls.key"), "-out", str(d / "tls.csr"))
        (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:istiod.istio-system.svc\n")
        openssl("x509", "-req", "-in", str(d / "tls.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                "-CAcreateserial", "-days", "3650", "-extfile", str(d / "san.ext"), "-out", str(d / "tls.crt"))

    def _register_webhook(self, cluster: _Kubectl) -> None:
        """Istio's own ValidatingWebhookConfiguration, pointed at this istiod."""
        ca = base64.b64encode((self.state_dir / "ca.crt").read_bytes()).decode()
        url = f"https://127.0.0.1:{self.state()['https']}/validate"
        rendered = subprocess.run(
            [
                str(self.bin_dir / "helm"), "template", "istio-base", str(self.bin_dir / "istio-base-chart"),
                "--namespace", ISTIO_NAMESPACE,
                "--show-only", "templates/defaultrevision-validatingwebhookconfiguration.yaml",
                "--set", f"base.validationURL={url}",
                "--set", f"base.validationCABundle={ca}",
            ],
            check=True, capture_output=True, text=True,
        ).stdout
        cluster.kubectl("apply", "-f", "-", input=rendered)
        # The API server may cache the old endpoint for a moment: wait until a refusal is istiod's.
        probe = json.dumps({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "istiod-webhook-probe", "namespace": ISTIO_NAMESPACE},
            "spec": {"hosts": ["probe"], "http": [{"match": [{"uri": {"regex": "("}}],
                                                   "route": [{"destination": {"host": "probe"}}]}]},
        })
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=probe, check=False)
            if answer.returncode != 0 and "validation.istio.io" in answer.stderr and "denied" in answer.stderr:
                return
            time.sleep(0.5)
        raise IstiodError(f"istiod's webhook at {url} does not answer; see {self.log_path}")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False
