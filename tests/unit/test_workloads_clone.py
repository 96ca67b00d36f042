"""Finding the stable Deployment and cloning it into the canary."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from istio_canary import workloads
from istio_canary.errors import (
    AmbiguousStableDeploymentError,
    InvalidSpecError,
    StableDeploymentNotFoundError,
    WorkloadError,
)
from istio_canary.models import CanaryReleaseSpec

SELECTOR = {"app": "reviews"}


def deployment(
    name: str = "reviews-v1",
    *,
    labels: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    replicas: int | None = 3,
) -> dict[str, Any]:
    """A Deployment as the API server serves it, with the server-set fields filled in."""
    pod_labels = labels if labels is not None else {"app": "reviews", "version": "v1"}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": dict(pod_labels)},
        "template": {
            "metadata": {"labels": dict(pod_labels), "creationTimestamp": None},
            "spec": {
                "containers": containers
                or [
                    {
                        "name": "reviews",
                        "image": "bookinfo-reviews-v1:1.13.0",
                        "ports": [{"containerPort": 9080}],
                    }
                ],
            },
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "bookinfo",
            "labels": {"app": "reviews", "version": "v1", "app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                "deployment.kubernetes.io/revision": "4",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "team": "reviews",
            },
            "uid": "0b3c-stable",
            "resourceVersion": "1234",
            "generation": 4,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "ownerReferences": [{"kind": "Application", "name": "bookinfo", "uid": "a1"}],
            "finalizers": ["example.com/keep"],
        },
        "spec": spec,
        "status": {"observedGeneration": 4, "replicas": 3, "readyReplicas": 3},
    }


def release_spec(**canary: Any) -> CanaryReleaseSpec:
    return CanaryReleaseSpec.model_validate(
        {"service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2", **canary}}
    )


def build(stable: dict[str, Any], spec: CanaryReleaseSpec) -> dict[str, Any]:
    return workloads.build_canary_deployment(
        stable=stable,
        spec=spec,
        release_namespace="bookinfo",
        release_name="reviews",
        release_uid="uid-123",
    )


class TestFindStableDeployment:
    def test_finds_the_deployment_whose_pods_carry_the_selector_and_the_version(self) -> None:
        v1, v2 = (
            deployment("reviews-v1"),
            deployment("reviews-v2", labels={"app": "reviews", "version": "v2"}),
        )
        ratings = deployment("ratings-v1", labels={"app": "ratings", "version": "v1"})
        found = workloads.find_stable_deployment(
            deployments=[ratings, v2, v1],
            service_selector=SELECTOR,
            version_label="version",
            version="v1",
        )
        assert found["metadata"]["name"] == "reviews-v1"

    def test_extra_pod_labels_do_not_prevent_a_match(self) -> None:
        extra = deployment(labels={"app": "reviews", "version": "v1", "tier": "backend"})
        found = workloads.find_stable_deployment(
            deployments=[extra], service_selector=SELECTOR, version_label="version", version="v1"
        )
        assert found["metadata"]["name"] == "reviews-v1"

    def test_uses_the_configured_version_label(self) -> None:
        track = deployment(labels={"app": "reviews", "track": "blue"})
        found = workloads.find_stable_deployment(
            deployments=[track], service_selector=SELECTOR, version_label="track", version="blue"
        )
        assert found["metadata"]["name"] == "reviews-v1"

    def test_the_returned_deployment_is_a_copy(self) -> None:
        original = deployment()
        found = workloads.find_stable_deployment(
            deployments=[original], service_selector=SELECTOR, version_label="version", version="v1"
        )
        found["metadata"]["name"] = "changed"
        assert original["metadata"]["name"] == "reviews-v1"

    def test_no_match_is_a_clear_error_naming_the_labels(self) -> None:
        with pytest.raises(StableDeploymentNotFoundError, match=r"app=reviews, version=v9"):
            workloads.find_stable_deployment(
                deployments=[deployment()],
                service_selector=SELECTOR,
                version_label="version",
                version="v9",
            )

    def test_several_matches_is_a_clear_error_naming_them(self) -> None:
        twins = [deployment("reviews-v1"), deployment("reviews-v1-copy")]
        with pytest.raises(AmbiguousStableDeploymentError, match=r"reviews-v1, reviews-v1-copy"):
            workloads.find_stable_deployment(
                deployments=twins, service_selector=SELECTOR, version_label="version", version="v1"
            )

    def test_a_deployment_being_deleted_is_not_a_candidate(self) -> None:
        leaving = deployment("reviews-v1-old")
        leaving["metadata"]["deletionTimestamp"] = "2025-01-02T00:00:00Z"
        found = workloads.find_stable_deployment(
            deployments=[leaving, deployment()],
            service_selector=SELECTOR,
            version_label="version",
            version="v1",
        )
        assert found["metadata"]["name"] == "reviews-v1"

    def test_a_service_without_selector_is_refused_rather_than_matching_everything(self) -> None:
        with pytest.raises(StableDeploymentNotFoundError, match="no selector"):
            workloads.find_stable_deployment(
                deployments=[deployment()],
                service_selector={},
                version_label="version",
                version="v1",
            )

    def test_errors_are_invalid_spec_errors_so_handlers_report_them(self) -> None:
        assert issubclass(StableDeploymentNotFoundError, InvalidSpecError)
        assert issubclass(AmbiguousStableDeploymentError, InvalidSpecError)


class TestCanaryName:
    def test_canary_is_named_after_the_service_and_the_canary_version(self) -> None:
        assert workloads.canary_deployment_name(release_spec()) == "reviews-v2"


class TestBuildCanaryDeployment:
    def test_version_label_changes_on_metadata_selector_and_pod_template(self) -> None:
        canary = build(deployment(), release_spec())
        assert canary["metadata"]["labels"]["version"] == "v2"
        assert canary["spec"]["selector"]["matchLabels"] == {"app": "reviews", "version": "v2"}
        assert canary["spec"]["template"]["metadata"]["labels"] == {
            "app": "reviews",
            "version": "v2",
        }

    @pytest.mark.parametrize(
        "istio_label", ["service.istio.io/canonical-revision", "app.kubernetes.io/version"]
    )
    def test_istio_sees_the_canary_version_even_when_the_stable_pods_name_their_revision(
        self, istio_label: str
    ) -> None:
        stable = deployment(labels={"app": "reviews", "version": "v1", istio_label: "1.13.0"})
        labels = build(stable, release_spec())["spec"]["template"]["metadata"]["labels"]
        assert labels["service.istio.io/canonical-revision"] == "v2"
        assert labels["version"] == "v2"

    def test_no_istio_revision_label_is_added_when_the_version_label_is_what_istio_reads(
        self,
    ) -> None:
        labels = build(deployment(), release_spec())["spec"]["template"]["metadata"]["labels"]
        assert "service.istio.io/canonical-revision" not in labels

    def test_canary_takes_its_name_and_keeps_the_namespace(self) -> None:
        canary = build(deployment(), release_spec())
        assert canary["metadata"]["name"] == "reviews-v2"
        assert canary["metadata"]["namespace"] == "bookinfo"

    def test_version_is_pinned_in_the_selector_even_when_the_stable_selector_lacks_it(self) -> None:
        stable = deployment()
        stable["spec"]["selector"] = {"matchLabels": {"app": "reviews"}}
        canary = build(stable, release_spec())
        assert canary["spec"]["selector"]["matchLabels"] == {"app": "reviews", "version": "v2"}

    def test_a_match_expression_on_the_version_label_is_refused(self) -> None:
        stable = deployment()
        stable["spec"]["selector"]["matchExpressions"] = [
            {"key": "version", "operator": "In", "values": ["v1"]}
        ]
        with pytest.raises(WorkloadError, match="matchExpression"):
            build(stable, release_spec())

    def test_image_replaces_the_only_container_image(self) -> None:
        canary = build(deployment(), release_spec(image="bookinfo-reviews-v2:1.13.0"))
        (container,) = canary["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "bookinfo-reviews-v2:1.13.0"
        assert container["ports"] == [{"containerPort": 9080}]

    def test_image_with_several_containers_is_an_error_that_suggests_images(self) -> None:
        stable = deployment(
            containers=[{"name": "reviews", "image": "a"}, {"name": "proxy", "image": "b"}]
        )
        with pytest.raises(WorkloadError, match=r"2 \(reviews, proxy\).*canary.images"):
            build(stable, release_spec(image="new"))

    def test_images_replace_the_named_containers_and_leave_the_others(self) -> None:
        stable = deployment(
            containers=[{"name": "reviews", "image": "a"}, {"name": "proxy", "image": "b"}]
        )
        canary = build(stable, release_spec(images={"reviews": "a2"}))
        images = {c["name"]: c["image"] for c in canary["spec"]["template"]["spec"]["containers"]}
        assert images == {"reviews": "a2", "proxy": "b"}

    def test_images_may_name_an_init_container(self) -> None:
        stable = deployment()
        stable["spec"]["template"]["spec"]["initContainers"] = [{"name": "migrate", "image": "m1"}]
        canary = build(stable, release_spec(images={"migrate": "m2"}))
        assert canary["spec"]["template"]["spec"]["initContainers"] == [
            {"name": "migrate", "image": "m2"}
        ]

    def test_images_naming_an_unknown_container_is_an_error_listing_the_known_ones(self) -> None:
        with pytest.raises(WorkloadError, match=r"sidecar.*containers are reviews"):
            build(deployment(), release_spec(images={"sidecar": "x"}))

    def test_without_image_the_canary_runs_the_stable_image(self) -> None:
        canary = build(deployment(), release_spec())
        assert (
            canary["spec"]["template"]["spec"]["containers"][0]["image"]
            == "bookinfo-reviews-v1:1.13.0"
        )

    def test_replicas_come_from_the_spec_when_given(self) -> None:
        image = "bookinfo-reviews-v2:1.13.0"
        assert build(deployment(replicas=3), release_spec(image=image, replicas=1))["spec"]["replicas"] == 1
        assert build(deployment(replicas=3), release_spec(image=image, replicas=0))["spec"]["replicas"] == 0

    def test_replicas_default_to_the_stable_deployments(self) -> None:
        assert build(deployment(replicas=3), release_spec())["spec"]["replicas"] == 3

    def test_absent_stable_replicas_mean_one_as_the_api_server_says(self) -> None:
        assert build(deployment(replicas=None), release_spec())["spec"]["replicas"] == 1

    def test_status_and_server_set_metadata_are_stripped(self) -> None:
        canary = build(deployment(), release_spec())
        assert "status" not in canary
        for field in (
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "finalizers",
        ):
            assert field not in canary["metadata"], field

    def test_owner_references_are_not_inherited_and_none_points_at_the_release(self) -> None:
        assert "ownerReferences" not in build(deployment(), release_spec())["metadata"]

    def test_revision_and_last_applied_annotations_are_stripped_but_others_kept(self) -> None:
        annotations = build(deployment(), release_spec())["metadata"]["annotations"]
        assert "deployment.kubernetes.io/revision" not in annotations
        assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
        assert annotations["team"] == "reviews"

    def test_ownership_is_marked_by_label_and_release_annotations(self) -> None:
        metadata = build(deployment(), release_spec())["metadata"]
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "istio-canary-operator"
        assert metadata["annotations"]["releases.istio-canary.io/release"] == "bookinfo/reviews"
        assert metadata["annotations"]["releases.istio-canary.io/release-uid"] == "uid-123"

    def test_a_paused_stable_does_not_leave_the_canary_paused(self) -> None:
        stable = deployment()
        stable["spec"]["paused"] = True
        assert "paused" not in build(stable, release_spec())["spec"]

    def test_the_stable_deployment_is_not_modified(self) -> None:
        stable = deployment()
        before = copy.deepcopy(stable)
        build(stable, release_spec(image="new"))
        assert stable == before

    def test_building_twice_gives_the_same_deployment(self) -> None:
        assert build(deployment(), release_spec(image="x")) == build(
            deployment(), release_spec(image="x")
        )


class TestIsCreatedBy:
    def test_a_canary_built_for_the_release_was_created_by_it(self) -> None:
        canary = build(deployment(), release_spec())
        assert workloads.is_created_by(
            deployment=canary, release_namespace="bookinfo", release_name="reviews"
        )

    def test_a_canary_of_another_release_was_not(self) -> None:
        canary = build(deployment(), release_spec())
        assert not workloads.is_created_by(
            deployment=canary, release_namespace="bookinfo", release_name="other"
        )
        assert not workloads.is_created_by(
            deployment=canary, release_namespace="shop", release_name="reviews"
        )

    def test_a_deployment_someone_else_made_was_not(self) -> None:
        assert not workloads.is_created_by(
            deployment=deployment(), release_namespace="bookinfo", release_name="reviews"
        )

    def test_the_annotation_alone_without_the_managed_by_label_is_not_enough(self) -> None:
        canary = build(deployment(), release_spec())
        canary["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "Helm"
        assert not workloads.is_created_by(
            deployment=canary, release_namespace="bookinfo", release_name="reviews"
        )
