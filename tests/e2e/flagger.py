"""The real Flagger as a peer on the local control plane: its binary, its CRDs, its process.

Flagger is built from its Go module (``go install github.com/fluxcd/flagger/cmd/flagger@<FLAGGER_VERSION>``)
into the control plane's ``bin`` directory, or wherever ``ICO_FLAGGER_BIN`` points. Its CRDs come
from the same module version, read from the Go module cache (``go mod download -json``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from devcluster import Cluster

from tests.e2e.processes import LoggedProcess

__all__ = ["FLAGGER_VERSION", "FlaggerProcess", "flagger_binary", "flagger_crds"]

FLAGGER_VERSION = "v1.36.1"
MODULE = "github.com/fluxcd/flagger"


def flagger_binary(cluster: Cluster) -> Path | None:
    """The Flagger binary to run, or None when it was not built."""
    chosen = os.environ.get("ICO_FLAGGER_BIN")
    path = Path(chosen) if chosen else cluster.bin_dir / "flagger"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def flagger_crds() -> str:
    """Flagger's CRDs (Canary, MetricTemplate, AlertProvider) from its module at FLAGGER_VERSION."""
    found = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@{FLAGGER_VERSION}"],
        check=True, capture_output=True, text=True, env={**os.environ, "GOFLAGS": ""},
    )
    directory = Path(json.loads(found.stdout)["Dir"])
    return (directory / "artifacts" / "flagger" / "crd.yaml").read_text()


class FlaggerProcess(LoggedProcess):
    """``flagger`` out of cluster, watching one namespace, asking one Prometheus."""

    def __init__(self, cluster: Cluster, *, binary: Path, namespace: str, prometheus_url: str) -> None:
        self.cluster, self.binary, self.namespace, self.prometheus_url = cluster, binary, namespace, prometheus_url
        self.log_path = cluster.state_dir / f"flagger-{namespace}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FlaggerProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(self.binary), "-kubeconfig", str(self.cluster.kubeconfig), "-namespace", self.namespace,
             "-metrics-server", self.prometheus_url, "-mesh-provider", "istio", "-log-level", "info",
             "-control-loop-interval", "2s", "-port", "0", "-enable-config-tracking=false"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self
