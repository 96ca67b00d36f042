"""The Helm chart rendered by helm and checked object by object."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "istio-canary-operator"
HELM = ROOT / ".bin" / "helm"
RELEASE_NAMESPACE = "ico-system"
# helm built by `go install` has no cluster version compiled in (it assumes v1.20): render as
# for the local control plane's version, which the chart's kubeVersion admits.
KUBE_VERSION = "1.34.4"

pytestmark = pytest.mark.skipif(
    not HELM.exists(), reason=".bin/helm is missing: build it with hack/build-controlplane.sh"
)

Obj = dict[str, Any]


def helm(*args: str) -> str:
    done = subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(*sets: str, include_crds: bool = False) -> list[Obj]:
    args = ["template", "ico", str(CHART), "--namespace", RELEASE_NAMESPACE]
    args += ["--kube-version", KUBE_VERSION]
    for value in sets:
        args += ["--set", value]
    if include_crds:
        args.append("--include-crds")
    return [doc for doc in yaml.safe_load_all(helm(*args)) if doc]


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def deployment(objects: list[Obj]) -> Obj:
    (found,) = of_kind(objects, "Deployment")
    return found


def container(objects: list[Obj]) -> Obj:
    (found,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return dict(found)


def rules(objects: list[Obj]) -> list[Obj]:
    return [r for o in objects if o["kind"] in ("Role", "ClusterRole") for r in o["rules"]]


def operator_cluster_roles(objects: list[Obj]) -> list[Obj]:
    """The ClusterRoles bound to the operator (not the aggregated ones for people)."""
    bound = {b["roleRef"]["name"] for b in of_kind(objects, "ClusterRoleBinding")}
    return [r for r in of_kind(objects, "ClusterRole") if r["metadata"]["name"] in bound]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def grants(role: Obj, *, group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in role["rules"]
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_chart_passes_helm_lint_strict() -> None:
    lint = ["lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)]
    helm(*lint)
    helm(*lint, "--set", "watchNamespaces={a,b}", "--set", "replicaCount=2")


def test_by_default_no_rbac_rule_touches_secrets_or_uses_wildcards() -> None:
    for objects in (render(), render("watchNamespaces={bookinfo}")):
        for rule in rules(objects):
            assert "secrets" not in rule["resources"]
            assert "*" not in rule["resources"] + rule["verbs"] + rule["apiGroups"]


def secret_rules(objects: list[Obj]) -> list[Obj]:
    return [r for r in rules(objects) if "secrets" in r["resources"]]


def test_with_release_prometheus_urls_the_operator_may_only_get_secrets() -> None:
    for objects in (
        render("outbound.allowReleasePrometheusUrls=true"),
        render("outbound.allowReleasePrometheusUrls=true", "watchNamespaces={bookinfo,shop}"),
    ):
        found = secret_rules(objects)
        assert found, "prometheusAuth needs get on Secrets"
        for rule in found:
            assert rule["resources"] == ["secrets"] and rule["verbs"] == ["get"]
            assert "resourceNames" not in rule


def test_secret_names_narrow_the_secret_rule_to_those_names() -> None:
    objects = render("outbound.allowReleasePrometheusUrls=true", "rbac.secretNames={prometheus-auth}")

    (rule,) = secret_rules(objects)
    assert rule["verbs"] == ["get"] and rule["resourceNames"] == ["prometheus-auth"]


def test_in_namespaced_mode_secrets_are_granted_in_the_watched_namespaces_only() -> None:
    objects = render("outbound.allowReleasePrometheusUrls=true", "watchNamespaces={bookinfo}")

    (cluster_role,) = operator_cluster_roles(objects)
    assert grants(cluster_role, group="", resource="secrets") == set()
    (role,) = of_kind(objects, "Role")
    assert role["metadata"]["namespace"] == "bookinfo"
    assert grants(role, group="", resource="secrets") == {"get"}


def test_aggregated_roles_let_admin_and_edit_write_releases_and_view_only_read_them() -> None:
    objects = render()
    edit = named(objects, "ClusterRole", "ico-istio-canary-operator-edit")
    view = named(objects, "ClusterRole", "ico-istio-canary-operator-view")
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"

    assert {k for k, v in edit["metadata"]["labels"].items() if k.startswith(aggregate) and v == "true"} == {
        f"{aggregate}admin",
        f"{aggregate}edit",
    }
    assert {k for k in view["metadata"]["labels"] if k.startswith(aggregate)} == {f"{aggregate}view"}
    group = "releases.istio-canary.io"
    assert grants(edit, group=group, resource="canaryreleases") >= {"create", "update", "patch", "delete"}
    # Status is the operator's record: nobody else writes it.
    assert grants(edit, group=group, resource="canaryreleases/status") == {"get", "list", "watch"}
    assert grants(view, group=group, resource="canaryreleases") == {"get", "list", "watch"}
    assert grants(view, group=group, resource="canaryreleases/status") == {"get", "list", "watch"}
    # Nothing but releases: aggregation must not widen admin, edit or view any further.
    for role in (edit, view):
        assert {g for rule in role["rules"] for g in rule["apiGroups"]} == {group}
    # They are for people: no binding gives them to the operator.
    assert {r["metadata"]["name"] for r in operator_cluster_roles(objects)} == {"ico-istio-canary-operator"}


def test_without_aggregation_no_roles_for_people_are_rendered() -> None:
    names = {r["metadata"]["name"] for r in of_kind(render("rbac.aggregateToUserRoles=false"), "ClusterRole")}

    assert names == {"ico-istio-canary-operator"}


def test_the_outbound_policy_values_become_flags_and_the_default_passes_none() -> None:
    args = container(render(
        "outbound.allowReleasePrometheusUrls=true",
        "outbound.allowedUrlPrefixes={https://prometheus.team-a.example/,http://prom:9090}",
        "outbound.refusedNetworks={10.96.0.0/12}",
        "outbound.allowedWebhookPrefixes={http://loadtester.test:8080/}",
    ))["args"]

    assert "--allow-release-prometheus-urls" in args
    assert "--allowed-webhook-prefix=http://loadtester.test:8080/" in args
    assert "--allowed-url-prefix=https://prometheus.team-a.example/" in args
    assert "--allowed-url-prefix=http://prom:9090" in args
    assert "--refuse-network=10.96.0.0/12" in args
    defaults = container(render())["args"]
    assert not [a for a in defaults if a.startswith(("--allow", "--refuse"))]


def test_cluster_wide_by_default_with_one_cluster_role_and_no_roles() -> None:
    objects = render()

    assert of_kind(objects, "Role") == [] and of_kind(objects, "RoleBinding") == []
    (role,) = operator_cluster_roles(objects)
    (binding,) = of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": "ico-istio-canary-operator",
            "namespace": RELEASE_NAMESPACE,
        }
    ]
    assert grants(role, group="networking.istio.io", resource="virtualservices") >= {
        "create",
        "patch",
        "delete",
    }
    assert grants(role, group="", resource="services") >= {"create", "patch", "delete"}
    assert grants(role, group="kopf.dev", resource="clusterkopfpeerings") == {
        "get",
        "list",
        "watch",
        "patch",
    }
    assert "--all-namespaces" in container(objects)["args"]


def test_watched_namespaces_get_a_role_each_and_the_cluster_role_only_reads() -> None:
    objects = render("watchNamespaces={bookinfo,shop}")

    roles = of_kind(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["bookinfo", "shop"]
    assert sorted(b["metadata"]["namespace"] for b in of_kind(objects, "RoleBinding")) == [
        "bookinfo",
        "shop",
    ]
    for role in roles:
        assert grants(role, group="apps", resource="deployments") >= {"create", "delete"}
        assert grants(role, group="kopf.dev", resource="kopfpeerings") == {
            "get",
            "list",
            "watch",
            "patch",
        }
    (cluster_role,) = operator_cluster_roles(objects)
    verbs = {verb for rule in cluster_role["rules"] for verb in rule["verbs"]}
    resources = {res for rule in cluster_role["rules"] for res in rule["resources"]}
    assert verbs == {"get", "list", "watch"}
    assert resources == {"customresourcedefinitions", "namespaces"}
    args = container(objects)["args"]
    assert "--namespace=bookinfo" in args and "--namespace=shop" in args
    assert "--all-namespaces" not in args


def test_the_operator_pod_meets_the_restricted_pod_security_standard() -> None:
    """The checks of the "restricted" profile (kubernetes.io/docs/concepts/security/pod-security-standards)."""
    pod = deployment(render())["spec"]["template"]["spec"]

    assert not [key for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    volume_types = {k for volume in pod.get("volumes", []) for k in volume if k != "name"}
    assert volume_types <= {"configMap", "emptyDir", "projected", "secret", "downwardAPI", "persistentVolumeClaim"}
    for c in pod["containers"] + pod.get("initContainers", []):
        security = {**pod["securityContext"], **c["securityContext"]}
        assert security.get("privileged", False) is False
        assert security["allowPrivilegeEscalation"] is False
        assert security["runAsNonRoot"] is True and security.get("runAsUser", 1) != 0
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        assert security["capabilities"]["drop"] == ["ALL"]
        assert set(security["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
        assert not [p for p in c.get("ports", []) if p.get("hostPort")]


def test_the_operator_container_is_locked_down() -> None:
    objects = render()
    pod = deployment(objects)["spec"]["template"]["spec"]
    security = container(objects)["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    resources = container(objects)["resources"]
    assert resources["requests"] and resources["limits"]


def test_probes_hit_kopfs_health_endpoint_that_the_operator_is_told_to_serve() -> None:
    c = container(render())

    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    assert "--metrics-port=9090" in c["args"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        assert probe["httpGet"]["path"] == "/healthz"
        assert ports[probe["httpGet"]["port"]] == 8080
    assert ports["metrics"] == 9090


def test_prometheus_url_and_peering_name_become_flags() -> None:
    args = container(render("prometheus.url=http://prom:9090", "peering.name=blue"))["args"]

    assert "--prometheus-url=http://prom:9090" in args
    assert "--peering=blue" in args


def test_without_prometheus_url_no_flag_is_passed() -> None:
    assert not any(a.startswith("--prometheus-url") for a in container(render())["args"])


def test_the_peering_object_matches_the_rbac_mode() -> None:
    (cluster_peering,) = of_kind(render(), "ClusterKopfPeering")
    assert cluster_peering["metadata"]["name"] == "istio-canary-operator"

    namespaced = of_kind(render("watchNamespaces={a,b}"), "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in namespaced) == ["a", "b"]


def test_without_peering_updates_recreate_the_pod_and_no_flag_is_passed() -> None:
    objects = render("peering.name=")

    assert deployment(objects)["spec"]["strategy"]["type"] == "Recreate"
    assert not any(a.startswith("--peering") for a in container(objects)["args"])
    assert of_kind(objects, "ClusterKopfPeering") == []


def test_a_pod_disruption_budget_exists_only_with_more_than_one_replica() -> None:
    assert of_kind(render(), "PodDisruptionBudget") == []

    objects = render("replicaCount=2")
    (pdb,) = of_kind(objects, "PodDisruptionBudget")
    assert deployment(objects)["spec"]["replicas"] == 2
    assert (
        pdb["spec"]["selector"]["matchLabels"]
        == deployment(objects)["spec"]["selector"]["matchLabels"]
    )


def test_the_metrics_service_selects_the_operator_and_the_service_monitor_is_optional() -> None:
    objects = render()
    (service,) = of_kind(objects, "Service")
    assert service["spec"]["selector"] == deployment(objects)["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 9090
    assert of_kind(objects, "ServiceMonitor") == []

    (monitor,) = of_kind(render("metrics.serviceMonitor.enabled=true"), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_include_crds_renders_the_release_crd_and_both_peering_crds() -> None:
    crds = of_kind(render(include_crds=True), "CustomResourceDefinition")

    assert sorted(c["metadata"]["name"] for c in crds) == [
        "canaryreleases.releases.istio-canary.io",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ]


def test_the_operators_prometheus_credentials_are_a_mounted_secret_and_headers_are_flags() -> None:
    plain = render("prometheus.url=https://mimir.example/prometheus")
    assert not [a for a in container(plain)["args"] if "credentials" in a or "header" in a]

    objects = render(
        "prometheus.url=https://mimir.example/prometheus", "prometheus.credentialsSecret=mimir-reader",
        "prometheus.headers.X-Scope-OrgID=mesh",
    )
    args = container(objects)["args"]
    assert "--prometheus-credentials-dir=/etc/istio-canary/prometheus" in args
    assert "--prometheus-header=X-Scope-OrgID=mesh" in args
    assert "--prometheus-insecure-skip-tls-verify" not in args
    volumes = {v["name"]: v for v in deployment(objects)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["prometheus-credentials"]["secret"]["secretName"] == "mimir-reader"
    mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
    assert mounts["prometheus-credentials"] == {
        "name": "prometheus-credentials", "mountPath": "/etc/istio-canary/prometheus", "readOnly": True
    }


def test_each_notification_receiver_is_a_flag_and_its_secret_a_volume() -> None:
    objects = render(
        "notifications.receivers[0].name=team-a", "notifications.receivers[0].type=Slack",
        "notifications.receivers[0].secretName=team-a-slack", "notifications.receivers[0].default=true",
        "notifications.receivers[1].name=oncall", "notifications.receivers[1].type=MSTeams",
        "notifications.receivers[1].secretName=oncall-teams", "notifications.receivers[1].severity=Error",
    )
    args = container(objects)["args"]
    assert ("--notification-receiver=name=team-a,type=Slack,url-file=/etc/istio-canary/notifications/team-a/url,"
            "severity=Info,default=true") in args
    assert ("--notification-receiver=name=oncall,type=MSTeams,url-file=/etc/istio-canary/notifications/oncall/url,"
            "severity=Error,default=false") in args
    volumes = {v["name"]: v for v in deployment(objects)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["notify-oncall"]["secret"]["secretName"] == "oncall-teams"
    mounts = {m["name"]: m["mountPath"] for m in container(objects)["volumeMounts"]}
    assert mounts["notify-team-a"] == "/etc/istio-canary/notifications/team-a"
