"""The local control plane and Prometheus that tests and the demo run against.

Kubernetes is compiled from the official Go modules by ``hack/build-controlplane.sh`` into
``.bin/`` and started with kwokctl's binary runtime (etcd, kube-apiserver with RBAC,
kube-controller-manager, kube-scheduler and kwok, whose fake node makes pods Ready).
Prometheus is Debian's package, started on a free loopback port. Nothing here is part of
the operator; pytest fixtures and ``make cluster-up`` / ``make demo`` share this code.
"""

from devcluster.cluster import Cluster, ClusterError, repo_root
from devcluster.prometheus import PrometheusServer

__all__ = ["Cluster", "ClusterError", "PrometheusServer", "repo_root"]
