"""The Argo CD health check (deploy/argocd/argocd-cm.yaml), run in Lua 5.1 on every situation."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.unit import argocd_lua
from tests.unit.release_states import STATES, release

HEALTH = argocd_lua.health_script(argocd_lua.configmap_data())
EXPECTED = {
    "waiting for the canary": "Progressing",
    "progressing at the weight the spec asks": "Suspended",
    "progressing under analysis": "Progressing",
    "waiting for an approval": "Suspended",
    "rolled back by a webhook": "Degraded",
    "paused": "Suspended",
    "taken over": "Suspended",
    "draining before job offline": "Progressing",
    "completed": "Healthy",
    "rolling back as asked": "Progressing",
    "aborted as asked": "Healthy",
    "rolling back after a failed analysis": "Degraded",
    "rolled back by the analysis": "Degraded",
    "rolled back, then a transient error": "Degraded",
    "failed on a spec that cannot be carried out": "Degraded",
    "failed: the canary never became ready": "Degraded",
    "retrying a transient error": "Progressing",
}


def health(obj: dict[str, Any]) -> dict[str, str]:
    result: dict[str, str] = argocd_lua.run(HEALTH, obj)
    return result


def test_every_situation_has_an_expected_health() -> None:
    assert set(EXPECTED) == set(STATES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_health_follows_the_phase_and_conditions_and_carries_the_message(name: str) -> None:
    obj = release(name)
    assert health(obj) == {"status": EXPECTED[name], "message": obj["status"]["message"]}


def test_a_release_the_operator_has_not_looked_at_yet_is_progressing() -> None:
    obj = release("completed")
    del obj["status"]
    assert health(obj)["status"] == "Progressing"


def test_a_spec_change_the_operator_has_not_seen_yet_is_progressing_whatever_the_old_status_says() -> None:
    obj = release("completed")
    obj["metadata"]["generation"] += 1
    assert health(obj) == {
        "status": "Progressing",
        "message": f"waiting for the operator to look at generation {obj['metadata']['generation']}",
    }


def test_a_status_from_before_the_kstatus_conditions_is_still_judged_by_its_phase() -> None:
    failed = release("failed on a spec that cannot be carried out")
    failed["status"]["conditions"] = []
    rolled_back = release("rolled back by the analysis")
    rolled_back["status"]["conditions"] = []
    assert health(failed)["status"] == health(rolled_back)["status"] == "Degraded"


def test_the_sandbox_refuses_what_argo_cd_lacks_so_the_check_cannot_lean_on_it() -> None:
    with pytest.raises(argocd_lua.LuaScriptError):
        argocd_lua.run('local json = require("json")\nreturn {}', release("completed"))


def test_the_configmap_in_the_docs_is_the_shipped_one() -> None:
    docs = (argocd_lua.ROOT / "docs" / "gitops.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", docs, flags=re.DOTALL) if argocd_lua.HEALTH_KEY in b]
    assert len(blocks) == 1, "docs/gitops.md shows the argocd-cm snippet once"
    assert yaml.safe_load(blocks[0]) == yaml.safe_load(argocd_lua.CONFIGMAP.read_text())
