"""The Argo CD resource actions patch exactly what `kubectl canary` patches, and only when it makes sense.

Argo CD turns an action's returned object into a merge patch against the live one; the patch
computed here the same way must equal the kubectl plugin's (plugin/patches.py), so the two
cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import pytest
from istio_canary.models.merge_patch import merge_patch
from istio_canary.plugin import patches

from tests.unit import argocd_lua
from tests.unit.release_states import STATES, release

DISCOVERY, ACTIONS = argocd_lua.action_scripts(argocd_lua.configmap_data())
VERBS = ("take-over-canary", "take-over-stable", "offline", "abort", "approve", "pause", "resume", "set-weight")


def act(name: str, obj: dict[str, Any], params: dict[str, str] | None = None) -> dict[str, Any]:
    """The merge patch Argo CD sends for the action ``name`` on ``obj``."""
    return merge_patch(obj, argocd_lua.run(ACTIONS[name], obj, params))


def enabled(obj: dict[str, Any]) -> set[str]:
    found: dict[str, dict[str, Any]] = argocd_lua.run(DISCOVERY, obj)
    assert set(found) == set(VERBS)
    return {name for name, action in found.items() if not action.get("disabled")}


def test_there_is_one_action_per_verb_of_the_kubectl_plugin() -> None:
    assert set(ACTIONS) == set(VERBS)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_take_over_patches_what_the_plugin_patches(version: str) -> None:
    obj = release("progressing at the weight the spec asks")
    name = "take-over-stable" if version == "v1" else "take-over-canary"
    assert act(name, obj) == patches.take_over_patch(obj, version) == {"spec": {"takeOver": version}}


def test_offline_patches_what_the_plugin_patches_after_a_take_over() -> None:
    obj = release("taken over")
    assert act("offline", obj) == patches.offline_patch(obj)


def test_offline_without_a_take_over_is_refused_like_the_plugin_refuses_it() -> None:
    obj = release("progressing at the weight the spec asks")
    with pytest.raises(patches.PluginError):
        patches.offline_patch(obj)
    with pytest.raises(argocd_lua.LuaScriptError, match="offline needs a take over first"):
        act("offline", obj)


@pytest.mark.parametrize(("name", "plugin"), [
    ("abort", patches.abort_patch), ("pause", patches.pause_patch), ("resume", patches.resume_patch),
])
def test_abort_pause_and_resume_patch_what_the_plugin_patches(name: str, plugin: Any) -> None:
    assert act(name, release("progressing at the weight the spec asks")) == plugin()


def test_approve_patches_what_the_plugin_patches_and_only_when_a_gate_asks() -> None:
    obj = release("waiting for an approval")
    assert act("approve", obj) == patches.approve_patch(obj)
    assert act("approve", obj)["spec"]["approve"]["beforeWeight"] == 50
    with pytest.raises(argocd_lua.LuaScriptError, match="waits for no approval"):
        act("approve", release("progressing under analysis"))


@pytest.mark.parametrize("weight", [0, 55, 100])  # the release is at 30
def test_set_weight_patches_what_the_plugin_patches(weight: int) -> None:
    obj = release("progressing at the weight the spec asks")
    assert act("set-weight", obj, {"weight": str(weight)}) == patches.set_weight_patch(weight)


def test_set_weight_adds_the_traffic_block_when_the_spec_has_none() -> None:
    obj = release("progressing at the weight the spec asks")
    del obj["spec"]["traffic"]
    assert act("set-weight", obj, {"weight": "40"}) == patches.set_weight_patch(40)


@pytest.mark.parametrize("given", ["-1", "101", "abc", "12.5", ""])
def test_set_weight_refuses_what_is_not_a_weight(given: str) -> None:
    with pytest.raises(argocd_lua.LuaScriptError, match="weight must be"):
        act("set-weight", release("progressing at the weight the spec asks"), {"weight": given})


def test_set_weight_offers_the_current_weight_as_its_default() -> None:
    found = argocd_lua.run(DISCOVERY, release("progressing at the weight the spec asks"))
    assert found["set-weight"]["params"] == [{"name": "weight", "value": "", "format": "^[0-9]+$", "default": "30"}]


@pytest.mark.parametrize("name", sorted(STATES))
@pytest.mark.parametrize("verb", VERBS)
def test_every_action_patches_only_the_spec(name: str, verb: str) -> None:
    obj = release(name)
    try:
        patch = act(verb, obj, {"weight": "20"})
    except argocd_lua.LuaScriptError:
        return  # refused: nothing is patched
    assert set(patch) <= {"spec"}


LIVE = {"take-over-canary", "take-over-stable", "abort", "pause", "set-weight"}
ENABLED = {
    "waiting for the canary": LIVE,
    "progressing at the weight the spec asks": LIVE,
    "progressing under analysis": LIVE - {"set-weight"},
    "waiting for an approval": (LIVE - {"set-weight"}) | {"approve"},
    "rolled back by a webhook": set(),
    "paused": {"take-over-canary", "take-over-stable", "abort", "resume", "set-weight"},
    "taken over": {"take-over-stable", "offline", "abort", "pause"},
    "draining before job offline": set(),
    "completed": set(),
    "rolling back as asked": set(),
    "aborted as asked": set(),
    "rolling back after a failed analysis": LIVE - {"set-weight"},
    "rolled back by the analysis": set(),
    "rolled back, then a transient error": set(),
    "failed on a spec that cannot be carried out": LIVE,
    "failed: the canary never became ready": LIVE - {"set-weight"},
    "retrying a transient error": LIVE,
}


def test_every_situation_says_which_actions_make_sense() -> None:
    assert set(ENABLED) == set(STATES)


@pytest.mark.parametrize("name", sorted(ENABLED))
def test_discovery_disables_the_actions_that_make_no_sense_now(name: str) -> None:
    assert enabled(release(name)) == ENABLED[name]


def test_paused_comes_from_the_spec_so_resume_is_offered_until_the_operator_has_seen_the_pause() -> None:
    obj = release("progressing at the weight the spec asks")
    obj["spec"]["policy"] = "Paused"
    assert "resume" in enabled(obj) and "pause" not in enabled(obj)


def test_blue_green_and_mirror_have_no_weight_to_set() -> None:
    for strategy in ("BlueGreen", "Mirror"):
        obj = release("progressing at the weight the spec asks")
        obj["spec"]["strategy"] = strategy
        assert "set-weight" not in enabled(obj)
