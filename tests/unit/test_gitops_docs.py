"""docs/gitops.md names the field manager the operator really writes with."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from istio_canary.k8s.cluster import FIELD_MANAGER

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "gitops.md").read_text()


def _block(marker: str) -> dict[str, Any]:
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", DOCS, flags=re.DOTALL) if marker in b]
    assert len(blocks) == 1
    return dict(yaml.safe_load(blocks[0]))


def test_argo_cd_ignores_the_fields_of_the_operator_s_own_field_manager() -> None:
    app = _block("managedFieldsManagers")
    ignored = {(i["group"], i["kind"]): i["managedFieldsManagers"] for i in app["spec"]["ignoreDifferences"]}
    assert ignored == {
        ("networking.istio.io", "VirtualService"): [FIELD_MANAGER],
        ("networking.istio.io", "DestinationRule"): [FIELD_MANAGER],
    }
    assert {"ServerSideApply=true", "RespectIgnoreDifferences=true"} <= set(app["spec"]["syncPolicy"]["syncOptions"])


def test_the_docs_name_the_field_manager_in_the_text_too() -> None:
    assert f"`{FIELD_MANAGER}`" in DOCS
