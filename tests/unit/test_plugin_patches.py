"""Each kubectl-canary verb patches exactly one spec field, after a cheap local check."""

from __future__ import annotations

from typing import Any

import pytest
from istio_canary.plugin.patches import (
    PluginError,
    abort_patch,
    describe_patch,
    offline_patch,
    pause_patch,
    resume_patch,
    set_weight_patch,
    take_over_patch,
)

RELEASE: dict[str, Any] = {
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {"service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2"}},
}


@pytest.mark.parametrize("weight", [0, 30, 100])
def test_set_weight_patches_only_the_traffic_weight(weight: int) -> None:
    assert set_weight_patch(weight) == {"spec": {"traffic": {"weight": weight}}}


@pytest.mark.parametrize("weight", [-1, 101])
def test_set_weight_refuses_a_weight_outside_0_to_100(weight: int) -> None:
    with pytest.raises(PluginError, match="between 0 and 100"):
        set_weight_patch(weight)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_take_over_accepts_the_stable_or_the_canary_version(version: str) -> None:
    assert take_over_patch(RELEASE, version) == {"spec": {"takeOver": version}}


def test_take_over_refuses_a_version_the_release_does_not_have() -> None:
    with pytest.raises(PluginError, match=r"'v3' is neither stable \(v1\) nor canary \(v2\)"):
        take_over_patch(RELEASE, "v3")


def test_offline_needs_a_take_over_first() -> None:
    with pytest.raises(PluginError, match="take over first"):
        offline_patch(RELEASE)


def test_offline_after_take_over_sets_offline() -> None:
    taken_over = {**RELEASE, "spec": {**RELEASE["spec"], "takeOver": "v2"}}

    assert offline_patch(taken_over) == {"spec": {"offline": True}}


def test_abort_sets_abort() -> None:
    assert abort_patch() == {"spec": {"abort": True}}


def test_pause_sets_policy_paused_and_resume_sets_it_back_to_wait_for_workload_ready() -> None:
    assert pause_patch() == {"spec": {"policy": "Paused"}}
    assert resume_patch() == {"spec": {"policy": "WaitForWorkloadReady"}}


def test_a_patch_is_described_by_its_dotted_fields() -> None:
    assert describe_patch(set_weight_patch(30)) == "traffic.weight=30"
    assert describe_patch(take_over_patch(RELEASE, "v2")) == 'takeOver="v2"'
