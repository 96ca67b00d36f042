"""The Helm chart's files, checked without helm: CRD copy, documented values, kopf CRDs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "istio-canary-operator"
CRD_NAME = "releases.istio-canary.io_canaryreleases.yaml"


def test_the_chart_crd_is_a_byte_for_byte_copy_of_the_generated_crd() -> None:
    generated = ROOT / "crds" / CRD_NAME
    if not generated.exists():
        pytest.skip(f"crds/{CRD_NAME} is not generated yet (make crds)")

    copy = CHART / "crds" / CRD_NAME
    assert copy.read_bytes() == generated.read_bytes(), (
        f"charts/istio-canary-operator/crds/{CRD_NAME} differs from crds/{CRD_NAME}: "
        "copy it again after regenerating the CRD"
    )


def test_the_chart_ships_both_kopf_peering_crds() -> None:
    docs = list(yaml.safe_load_all((CHART / "crds" / "kopf.dev_peerings.yaml").read_text()))

    scopes = {d["spec"]["names"]["kind"]: d["spec"]["scope"] for d in docs}
    assert scopes == {"ClusterKopfPeering": "Cluster", "KopfPeering": "Namespaced"}
    for doc in docs:
        assert doc["spec"]["group"] == "kopf.dev"
        (version,) = doc["spec"]["versions"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        # kopf writes one status key per operator instance: the schema must not prune them.
        assert status["x-kubernetes-preserve-unknown-fields"] is True


def value_docs(text: str) -> dict[str, tuple[bool, bool]]:
    """Every key path of values.yaml: (has its own ``# --`` comment, or inherits an ancestor's)."""
    result: dict[str, tuple[bool, bool]] = {}
    stack: list[tuple[int, str, bool]] = []  # (indent, path, documented)
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        if not stripped or stripped.startswith("-") or ":" not in stripped:
            comment = []
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = stripped.split(":", 1)[0].strip('"')
        path = f"{stack[-1][1]}.{key}" if stack else key
        own = any(c.startswith("# --") for c in comment)
        inherited = any(documented for _, _, documented in stack)
        result[path] = (own, inherited)
        stack.append((indent, path, own or inherited))
        comment = []
    return result


def leaf_paths(values: object, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        return [p for k, v in values.items() for p in leaf_paths(v, f"{prefix}{k}.")]
    return [prefix[:-1]]


def test_every_value_in_values_yaml_has_a_comment() -> None:
    text = (CHART / "values.yaml").read_text()
    docs = value_docs(text)

    leaves = leaf_paths(yaml.safe_load(text))
    undocumented = [leaf for leaf in leaves if not any(docs.get(leaf, (False, False)))]
    assert leaves and not undocumented


def test_every_commented_value_is_in_the_install_docs_table() -> None:
    own_docs = [
        path for path, (own, _) in value_docs((CHART / "values.yaml").read_text()).items() if own
    ]
    install = (ROOT / "docs" / "install.md").read_text()

    missing = [path for path in own_docs if f"`{path}`" not in install]
    assert own_docs and not missing
