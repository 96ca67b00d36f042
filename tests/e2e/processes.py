"""The operator as a process of its own, started by the ``start_operator`` fixture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from devcluster import Cluster


class LoggedProcess:
    """A test's background process whose output goes to ``log_path``: stopped with SIGTERM, then SIGKILL."""

    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if hasattr(self, "_log"):
            self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class OperatorProcess(LoggedProcess):
    """``istio-canary-operator run`` in a subprocess, watching one namespace."""

    def __init__(self, cluster: Cluster, namespace: str, extra: list[str], env: dict[str, str] | None = None) -> None:
        self.cluster, self.namespace, self.extra, self.env = cluster, namespace, extra, env or {}
        self.log_path = cluster.state_dir / f"operator-{namespace}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        exe = Path(sys.executable).parent / "istio-canary-operator"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(exe), "run", "--namespace", self.namespace, "--kubeconfig", self.cluster.kubeconfig,
             "--log-format", "json", *self._defaults(), *self.extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        return self

    def _defaults(self) -> list[str]:
        # A short drain keeps the suite fast; tests of the drain itself set spec.drainSeconds.
        return [] if any(a.startswith("--drain-seconds") for a in self.extra) else ["--drain-seconds", "1"]

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizers, like a crashed pod."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

