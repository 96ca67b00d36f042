"""Readiness of a Deployment, and the minimal patch towards the desired canary."""

from __future__ import annotations

import copy
from typing import Any

from istio_canary import workloads


def observed(
    *, generation: int = 2, observed_generation: int | None = 2, ready: int | None = 1
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if observed_generation is not None:
        status["observedGeneration"] = observed_generation
    if ready is not None:
        status["readyReplicas"] = ready
    return {"metadata": {"name": "reviews-v2", "generation": generation}, "status": status}


class TestReadiness:
    def test_ready_replicas_reads_the_status(self) -> None:
        assert workloads.ready_replicas(observed(ready=3)) == 3

    def test_ready_replicas_is_zero_when_the_api_server_leaves_it_out(self) -> None:
        assert workloads.ready_replicas(observed(ready=None)) == 0
        assert workloads.ready_replicas({"metadata": {}}) == 0

    def test_a_deployment_with_a_ready_pod_for_its_latest_spec_has_ready_pods(self) -> None:
        assert workloads.has_ready_pods(observed())

    def test_no_ready_pod_means_not_ready(self) -> None:
        assert not workloads.has_ready_pods(observed(ready=0))
        assert not workloads.has_ready_pods(observed(ready=None))

    def test_ready_pods_counted_for_an_older_generation_do_not_count(self) -> None:
        assert not workloads.has_ready_pods(observed(generation=3, observed_generation=2, ready=1))

    def test_a_deployment_the_controller_has_not_seen_yet_is_not_ready(self) -> None:
        assert not workloads.has_ready_pods(observed(observed_generation=None))
        assert not workloads.has_ready_pods({"metadata": {"name": "x"}})


def canary(*, image: str = "reviews:v2", replicas: int = 1, version: str = "v2") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "reviews-v2",
            "labels": {
                "app": "reviews",
                "version": version,
                "app.kubernetes.io/managed-by": "istio-canary-operator",
            },
            "resourceVersion": "77",
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "reviews", "version": version}},
            "template": {
                "metadata": {"labels": {"app": "reviews", "version": version}},
                "spec": {
                    "initContainers": [{"name": "migrate", "image": "migrate:v2"}],
                    "containers": [
                        {"name": "reviews", "image": image, "ports": [{"containerPort": 9080}]},
                        {"name": "proxy", "image": "proxy:1"},
                    ],
                },
            },
        },
        "status": {"observedGeneration": 1, "readyReplicas": 1},
    }


class TestDeploymentPatch:
    def test_nothing_changed_means_no_patch_at_all(self) -> None:
        assert workloads.deployment_patch(current=canary(), desired=canary()) is None

    def test_fields_the_operator_does_not_own_are_ignored(self) -> None:
        current = canary()
        current["metadata"]["labels"]["added-by-someone"] = "yes"
        current["metadata"]["annotations"] = {"note": "x"}
        current["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
        current["spec"]["template"]["spec"]["containers"].append(
            {"name": "debug", "image": "busybox"}
        )
        assert workloads.deployment_patch(current=current, desired=canary()) is None

    def test_a_changed_image_patches_only_that_container_by_name(self) -> None:
        patch = workloads.deployment_patch(
            current=canary(image="reviews:v2"), desired=canary(image="reviews:v2.1")
        )
        assert patch == {
            "spec": {
                "template": {"spec": {"containers": [{"name": "reviews", "image": "reviews:v2.1"}]}}
            }
        }

    def test_a_changed_init_container_image_is_patched(self) -> None:
        desired = canary()
        desired["spec"]["template"]["spec"]["initContainers"][0]["image"] = "migrate:v3"
        patch = workloads.deployment_patch(current=canary(), desired=desired)
        assert patch == {
            "spec": {
                "template": {
                    "spec": {"initContainers": [{"name": "migrate", "image": "migrate:v3"}]}
                }
            }
        }

    def test_changed_replicas_are_patched(self) -> None:
        assert workloads.deployment_patch(
            current=canary(replicas=1), desired=canary(replicas=3)
        ) == {"spec": {"replicas": 3}}

    def test_changed_or_missing_labels_are_patched_and_extra_ones_kept(self) -> None:
        current = canary()
        del current["metadata"]["labels"]["app.kubernetes.io/managed-by"]
        current["metadata"]["labels"]["extra"] = "kept"
        current["spec"]["template"]["metadata"]["labels"]["version"] = "old"
        patch = workloads.deployment_patch(current=current, desired=canary())
        assert patch == {
            "metadata": {"labels": {"app.kubernetes.io/managed-by": "istio-canary-operator"}},
            "spec": {"template": {"metadata": {"labels": {"version": "v2"}}}},
        }

    def test_the_selector_is_never_patched_because_it_is_immutable(self) -> None:
        current = canary()
        current["spec"]["selector"] = {"matchLabels": {"app": "reviews"}}
        assert workloads.deployment_patch(current=current, desired=canary()) is None

    def test_a_container_missing_from_the_current_deployment_is_not_added_half_specified(
        self,
    ) -> None:
        current = canary()
        current["spec"]["template"]["spec"]["containers"].pop()
        assert workloads.deployment_patch(current=current, desired=canary()) is None

    def test_the_inputs_are_not_modified(self) -> None:
        current, desired = canary(image="a"), canary(image="b", replicas=2)
        before = copy.deepcopy((current, desired))
        workloads.deployment_patch(current=current, desired=desired)
        assert (current, desired) == before
