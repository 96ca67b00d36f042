"""Outages of the local control plane's own processes, for the outage campaign.

kwokctl runs each component as a plain process and keeps its pid in ``pids/<component>.pid`` of
the cluster's folder. A component is stopped with SIGKILL (no graceful shutdown, like a crashed
node) and started again with the command line, working directory and environment it had.

kube-controller-manager and kube-scheduler exit when they cannot renew their leader lease (an
API server down for ~10 s is enough); in a real cluster the kubelet starts them again. Here
``ControlPlane`` plays that part: it records every component's command line while it runs, and
after an outage starts again any component that died.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devcluster import Cluster

from tests.e2e.helpers import wait_for

__all__ = ["Component", "ControlPlane"]

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process: not gone, and not a zombie its parent has yet to reap."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


@dataclass(frozen=True)
class Launch:
    """How a component was started: enough to start it again."""

    argv: list[bytes]
    cwd: str
    environ: dict[bytes, bytes]

    @classmethod
    def of(cls, pid: int) -> Launch:
        proc = Path(f"/proc/{pid}")
        environ = dict(
            entry.split(b"=", 1) for entry in (proc / "environ").read_bytes().split(b"\0") if b"=" in entry
        )
        return cls((proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0"), os.readlink(proc / "cwd"), environ)


@dataclass(frozen=True)
class Component:
    """One process of the cluster (``kube-apiserver``, ``etcd``, ...)."""

    cluster: Cluster
    name: str

    @property
    def _folder(self) -> Path:
        return self.cluster.state_dir / "kwok" / "clusters" / self.cluster.name

    @property
    def _pid_file(self) -> Path:
        return self._folder / "pids" / f"{self.name}.pid"

    def pid(self) -> int:
        return int(self._pid_file.read_text().strip())

    def pause(self, *, seconds: float) -> None:
        """Freeze the process (SIGSTOP) for ``seconds``, then let it go on (SIGCONT): a hung disk or VM."""
        pid = self.pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    def alive(self) -> bool:
        return _running(self.pid())

    def kill(self) -> Launch:
        """SIGKILL the process; how it was started."""
        pid = self.pid()
        launch = Launch.of(pid)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _running(pid), timeout=30, what=f"{self.name} gone")
        return launch

    def start(self, launch: Launch) -> None:
        with (self._folder / "logs" / f"{self.name}.log").open("ab") as log:
            proc = subprocess.Popen(
                launch.argv, cwd=launch.cwd, env=launch.environ, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._pid_file.write_text(str(proc.pid))


class ControlPlane:
    """The cluster's components, restarted like a kubelet would after one of them was down."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.components = {name: Component(cluster, name) for name in COMPONENTS}
        self.launches = {name: Launch.of(c.pid()) for name, c in self.components.items()}
        self.restarted: list[str] = []

    def restart(self, name: str, *, down_seconds: float) -> float:
        """Kill ``name``, keep it down ``down_seconds``, start it again; seconds until the cluster answers."""
        self.components[name].kill()
        time.sleep(down_seconds)
        started = time.monotonic()
        self.components[name].start(self.launches[name])
        wait_for(self.cluster.is_up, timeout=120, what=f"the cluster answering after {name} restarted")
        took = time.monotonic() - started
        self.revive()
        return took

    def revive(self, *, watch_seconds: float = 20) -> None:
        """For ``watch_seconds``, start again every component that dies (a lost lease shows up late)."""
        deadline = time.monotonic() + watch_seconds
        while time.monotonic() < deadline:
            for name, component in self.components.items():
                if not component.alive():
                    component.start(self.launches[name])
                    self.restarted.append(name)
            time.sleep(0.5)
