"""What GitOps tools see of a live release, and how they apply: for the GitOps e2e tests.

``kstatus`` asks the kstatus library itself (hack/kstatus, built into .bin/istio-kstatus);
``argo_health`` runs the Argo CD health check of deploy/argocd; ``argo_sync`` applies an object
from Git the way Argo CD does with server-side apply, ``RespectIgnoreDifferences=true`` and
``ignoreDifferences.managedFieldsManagers``: the fields a listed manager owns keep their live
values, everything else is Git's.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from devcluster import Cluster

from tests.unit import argocd_lua

OPERATOR_MANAGER = "istio-canary-operator"
ARGO_MANAGER = "argocd-controller"


def kstatus(cluster: Cluster, obj: Mapping[str, Any]) -> dict[str, Any]:
    """kstatus' verdict on ``obj``: {"status": "Current|InProgress|Failed|...", "message", "conditions"}."""
    binary = cluster.bin_dir / "istio-kstatus"
    assert binary.exists(), f"{binary} is missing: hack/build-controlplane.sh builds it"
    proc = subprocess.run(
        [str(binary)], input=json.dumps(obj), capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def argo_health(obj: Mapping[str, Any]) -> dict[str, str]:
    """Argo CD's health of ``obj`` by the shipped health check."""
    script = argocd_lua.health_script(argocd_lua.configmap_data())
    result: dict[str, str] = argocd_lua.run(script, obj)
    return result


def owned_paths(fields_v1: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The paths of the fields one manager owns (``f:`` keys); a list item owned means its list."""
    for key, sub in fields_v1.items():
        if key == ".":
            continue
        if not key.startswith("f:"):
            yield prefix  # k:, v:, i: an item of a list: the list as a whole
            return
        path = (*prefix, key[2:])
        children = {k: v for k, v in (sub or {}).items() if k != "."}
        if children:
            yield from owned_paths(children, path)
        else:
            yield path


def documented_block(marker: str) -> dict[str, Any]:
    """The one YAML block of docs/gitops.md that contains ``marker``, parsed."""
    docs = (argocd_lua.ROOT / "docs" / "gitops.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", docs, flags=re.DOTALL) if marker in b]
    assert len(blocks) == 1, f"docs/gitops.md has {len(blocks)} YAML blocks with {marker!r}"
    return dict(yaml.safe_load(blocks[0]))


def documented_argo_ignores() -> dict[str, set[str]]:
    """Kind -> the managers whose fields Argo CD leaves alone, as docs/gitops.md configures it."""
    app = documented_block("managedFieldsManagers")
    options = set(app["spec"]["syncPolicy"]["syncOptions"])
    assert {"ServerSideApply=true", "RespectIgnoreDifferences=true"} <= options, options
    return {i["kind"]: set(i["managedFieldsManagers"]) for i in app["spec"]["ignoreDifferences"]}


def argo_sync_manifest(
    git: Mapping[str, Any], live: Mapping[str, Any] | None, *, ignored_managers: set[str]
) -> dict[str, Any]:
    """Git's object, with every field that ``ignored_managers`` own in ``live`` taken from ``live``."""
    desired = copy.deepcopy(dict(git))
    if live is None:
        return desired
    for entry in live["metadata"].get("managedFields") or []:
        if entry.get("manager") not in ignored_managers:
            continue
        for path in set(owned_paths(entry.get("fieldsV1") or {})):
            _copy_path(live, desired, path)
    return desired


def _copy_path(source: Mapping[str, Any], target: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = source
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return
        node = node[key]
    here = target
    for key in path[:-1]:
        here = here.setdefault(key, {})
    here[path[-1]] = copy.deepcopy(node)


def live_object(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    """The object with its managedFields (which `kubectl get` leaves out unless asked)."""
    proc = cluster.kubectl(
        "get", kind, name, "-n", namespace, "-o", "json", "--show-managed-fields", check=False
    )
    if proc.returncode != 0:
        assert "NotFound" in proc.stderr, proc.stderr
        return None
    return dict(json.loads(proc.stdout))


def server_side_apply(
    cluster: Cluster, namespace: str, manifest: Mapping[str, Any], *, manager: str
) -> dict[str, Any]:
    """`kubectl apply --server-side --force-conflicts` under ``manager``, as Argo CD and Flux apply.

    Returns the object as the API server stored it by this apply (later writers may change it).
    """
    stored = cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", f"--field-manager={manager}", "-n", namespace, "-f", "-",
        "-o", "json", input=json.dumps(manifest),
    )
    return dict(json.loads(stored.stdout))


def managers(obj: Mapping[str, Any]) -> dict[str, set[tuple[str, ...]]]:
    """Who owns what: manager -> the paths it owns."""
    owned: dict[str, set[tuple[str, ...]]] = {}
    for entry in obj["metadata"].get("managedFields") or []:
        owned.setdefault(entry["manager"], set()).update(owned_paths(entry.get("fieldsV1") or {}))
    return owned
