"""Bookinfo, the operator and one release brought to a phase: the preamble of most e2e tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from devcluster import Cluster

from tests.e2e.helpers import apply, deploy_bookinfo, example_release, release_phase, wait_for
from tests.e2e.processes import OperatorProcess


@dataclass(frozen=True)
class StartedRelease:
    """What the preamble leaves: the operator process and the release as stored in its phase."""

    operator: OperatorProcess
    body: dict[str, Any]

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.body.get("status") or {})


class ReleaseStarter:
    """Deploys Bookinfo, starts the operator, applies a release and waits for its phase."""

    def __init__(
        self, cluster: Cluster, namespace: str, start_operator: Callable[..., OperatorProcess]
    ) -> None:
        self.cluster, self.namespace, self._start_operator = cluster, namespace, start_operator

    def __call__(
        self,
        release: dict[str, Any] | None = None,
        *,
        until: str = "Progressing",
        operator_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        prepare: Callable[[], object] | None = None,
        timeout: float = 90,
    ) -> StartedRelease:
        """``release`` (default: examples/bookinfo/canary-weight.yaml) in phase ``until``.

        ``prepare`` runs once Bookinfo is ready and before the operator starts: objects the
        user had before the release (routing, a Deployment, an HPA) or load on the mesh.
        ``operator_args`` and ``env`` go to the operator's command line and environment.
        """
        deploy_bookinfo(self.cluster, self.namespace)
        if prepare is not None:
            prepare()
        operator = self._start_operator(*operator_args, env=env)
        body = release if release is not None else example_release()
        apply(self.cluster, self.namespace, body)
        name = body["metadata"]["name"]
        stored = wait_for(
            lambda: release_phase(self.cluster, self.namespace, name, until),
            timeout=timeout,
            what=f"release {name} {until}",
        )
        return StartedRelease(operator=operator, body=stored)
