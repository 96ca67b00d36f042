"""Start, reuse and stop a kwok-based Kubernetes control plane on loopback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster.istiod import Istiod

__all__ = ["Cluster", "ClusterError", "repo_root"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

FAKE_NODE_NAME = "kwok-node-0"


class ClusterError(RuntimeError):
    """The control plane could not be built, started or reached."""


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "hack").is_dir():
            return parent
    raise ClusterError(f"cannot find the repository root above {here}")


@dataclass
class Cluster:
    """One local cluster: its kwokctl name, state folder and admin kubeconfig.

    ``up()`` is idempotent: a cluster that already answers is reused as it is.
    """

    name: str = "istio-canary"
    root: Path = field(default_factory=repo_root)

    @property
    def bin_dir(self) -> Path:
        return self.root / ".bin"

    @property
    def state_dir(self) -> Path:
        return self.root / ".cluster"

    @property
    def kubeconfig(self) -> str:
        return str(self.state_dir / ("kubeconfig" if self.name == "istio-canary" else f"{self.name}.kubeconfig"))

    @property
    def istiod(self) -> Istiod:
        """Istio's istiod for this cluster (started by ``up``, stopped by ``down``)."""
        return Istiod(
            bin_dir=self.bin_dir, state_dir=self.state_dir / f"istiod-{self.name}", kubeconfig=self.kubeconfig
        )

    # -- building -----------------------------------------------------------------------------

    def build(self) -> None:
        """Build the binaries when they are missing or stale (a no-op when up to date)."""
        subprocess.run(["bash", str(self.root / "hack" / "build-controlplane.sh")], check=True)

    # -- lifecycle ----------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        b = self.bin_dir
        env = dict(os.environ)
        env.update(
            {
                "KWOK_WORKDIR": str(self.state_dir / "kwok"),
                "KWOK_RUNTIME": "binary",
                "KWOK_KUBE_VERSION": self._kube_version(),
                "KWOK_KUBE_APISERVER_BINARY": str(b / "kube-apiserver"),
                "KWOK_KUBE_CONTROLLER_MANAGER_BINARY": str(b / "kube-controller-manager"),
                "KWOK_KUBE_SCHEDULER_BINARY": str(b / "kube-scheduler"),
                "KWOK_KUBECTL_BINARY": str(b / "kubectl"),
                "KWOK_CONTROLLER_BINARY": str(b / "kwok"),
                "KWOK_ETCD_BINARY": str(b / "etcd"),
                "PATH": f"{b}{os.pathsep}{env.get('PATH', '')}",
            }
        )
        return env

    def _kube_version(self) -> str:
        stamp = self.bin_dir / ".versions"
        if stamp.exists():
            for item in stamp.read_text().split():
                key, _, value = item.partition("=")
                if key == "kubernetes":
                    return value
        raise ClusterError(f"{stamp} is missing: run hack/build-controlplane.sh first")

    def _kwokctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(  # noqa: PLW1510 - callers check returncode
            [str(self.bin_dir / "kwokctl"), "--name", self.name, *args],
            env=self._env(),
            text=True,
            capture_output=True,
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kwokctl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def is_up(self) -> bool:
        if not Path(self.kubeconfig).exists():
            return False
        proc = self.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
        return proc.returncode == 0 and proc.stdout.strip() == "ok"

    def up(self, *, crds: bool = True, istiod: bool = True) -> None:
        """Start the cluster (or reuse a running one), add one fake node, install the CRDs, start istiod."""
        if not self.is_up():
            self._kwokctl("delete", "cluster", check=False)
            self.state_dir.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            self._kwokctl("create", "cluster", *self._create_args())
            self._wait_ready(timeout=120)
            print(f"cluster {self.name}: control plane ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        self.ensure_fake_node()
        if crds:
            self.install_crds()
        if crds and istiod:
            started = time.monotonic()
            was_up = self.istiod.is_up()
            self.istiod.up(self)
            if not was_up:
                print(f"cluster {self.name}: istiod ready in {time.monotonic() - started:.1f} s", file=sys.stderr)

    def _create_args(self) -> list[str]:
        """kwokctl binds every component to 0.0.0.0 by default; keep them all on loopback."""
        etcd, peer, apiserver, kwok = (_free_port() for _ in range(4))
        loopback = "127.0.0.1"
        # kwokctl v0.8.0 indexes its patches by the position of a component's first
        # --extra-args (mutationComponentPatches), so each component's first argument must
        # come before any component's second one: one per component first, then the rest.
        extra = [
            f"etcd=listen-client-urls=http://{loopback}:{etcd}",
            f"kube-apiserver=bind-address={loopback}",
            f"kube-controller-manager=bind-address={loopback}",
            f"kube-scheduler=bind-address={loopback}",
            f"kwok-controller=server-address={loopback}:{kwok}",
            f"etcd=advertise-client-urls=http://{loopback}:{etcd}",
            f"etcd=listen-peer-urls=http://{loopback}:{peer}",
            f"etcd=initial-advertise-peer-urls=http://{loopback}:{peer}",
            f"etcd=initial-cluster=node0=http://{loopback}:{peer}",
            f"kube-apiserver=etcd-servers=http://{loopback}:{etcd}",
        ]
        return [
            "--kube-authorization=true",
            f"--etcd-port={etcd}",
            f"--kube-apiserver-port={apiserver}",
            f"--controller-port={kwok}",
            "--wait=120s",
            "--kubeconfig", self.kubeconfig,
            *(f"--extra-args={e}" for e in extra),
        ]

    def down(self) -> None:
        self.istiod.stop()
        self._kwokctl("delete", "cluster", check=False)
        Path(self.kubeconfig).unlink(missing_ok=True)
        shutil.rmtree(self.state_dir / "kwok" / "clusters" / self.name, ignore_errors=True)

    def _wait_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_up():
                return
            time.sleep(0.5)
        raise ClusterError(f"kube-apiserver of {self.name} not ready after {timeout:.0f} s")

    # -- contents -----------------------------------------------------------------------------

    def ensure_fake_node(self) -> None:
        """A node that kwok keeps Ready; pods scheduled on it become Running and Ready."""
        if self.kubectl("get", "node", FAKE_NODE_NAME, check=False).returncode == 0:
            return
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": FAKE_NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"kubernetes.io/hostname": FAKE_NODE_NAME, "type": "kwok"},
            },
            "status": {
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            },
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(node))

    def install_crds(self) -> None:
        """Istio's CRDs (of the istio.io/istio commit istiod is built from, schemas and CEL rules) and ours."""
        files = [self.bin_dir / "istio-crds.yaml", *sorted((self.root / "crds").glob("*.yaml"))]
        for path in files:
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(  # noqa: PLW1510 - callers check returncode
            [str(self.bin_dir / "kubectl"), "--kubeconfig", self.kubeconfig, *args],
            input=input,
            text=True,
            capture_output=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient for the admin kubeconfig."""
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig)
