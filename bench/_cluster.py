"""The benchmarks' own kwok cluster: the audit log on, no client QPS limits, more fake nodes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from _audit import AUDIT_POLICY, BENCH_USER_AGENT
from devcluster import Cluster
from devcluster.cluster import FAKE_NODE_NAME
from kubernetes import client

__all__ = ["BenchCluster"]


@dataclass
class BenchCluster(Cluster):
    """A devcluster with the audit log on, no client QPS limits, and ``fake_nodes`` pod-holding nodes."""

    fake_nodes: int = 2

    @property
    def audit_policy(self) -> Path:
        return self.state_dir / f"{self.name}-audit-policy.yaml"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "kwok" / "clusters" / self.name / "logs" / "audit.log"

    def _create_args(self) -> list[str]:
        self.audit_policy.write_text(AUDIT_POLICY)
        return [
            *super()._create_args(),
            "--disable-qps-limits",
            f"--kube-audit-policy={self.audit_policy}",
        ]

    def ensure_fake_node(self) -> None:
        super().ensure_fake_node()
        base = json.loads(self.kubectl("get", "node", FAKE_NODE_NAME, "-o", "json").stdout)
        for i in range(1, self.fake_nodes):
            name = f"kwok-node-{i}"
            if self.kubectl("get", "node", name, check=False).returncode == 0:
                continue
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": base["metadata"]["annotations"],
                    "labels": {**base["metadata"]["labels"], "kubernetes.io/hostname": name},
                },
                "status": {
                    "allocatable": base["status"]["allocatable"],
                    "capacity": base["status"]["capacity"],
                },
            }
            self.kubectl("apply", "-f", "-", input=json.dumps(node))

    def bench_client(self) -> client.ApiClient:
        api: client.ApiClient = self.api_client()
        api.user_agent = BENCH_USER_AGENT
        # Many threads share this client: one connection each.
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 32
        return api
