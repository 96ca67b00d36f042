"""Fuzzed specs: generated releases, spec edits and status writes never move traffic or crash the operator.

A release of reviews runs at 30% under the invariant monitor. Hypothesis then throws at it spec
edits that must change nothing (``fuzz_specs.hostile_edits``), new releases aimed at reviews
(already in a release) or at Services that do not exist, and status writes by a user. Each edit
is refused by the API server or answered in status within seconds; each new release is refused
or answered and then deletes within seconds; the reviews VirtualService and DestinationRule are
never written; the operator never dies or fails with an unexpected exception.

The default suite runs about 100 cases; ``make reliability`` about 1,000.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections import Counter
from typing import Any

import pytest
from devcluster import Cluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from istio_canary.reconcile import RESYNC_SECONDS

from tests.e2e.campaign import campaign_count
from tests.e2e.fuzz_specs import BASE_SPEC, hostile_edits, release_names, release_specs
from tests.e2e.helpers import get, route_weights, wait_for
from tests.e2e.processes import OperatorProcess
from tests.e2e.releases import ReleaseStarter

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("invariant_monitor")]

EDITS, NEW_RELEASES, STATUS_WRITES = campaign_count(600), campaign_count(300), campaign_count(100)
BATCH = 5  # new releases are created five at a time and answered in parallel
ANSWER_SECONDS = 45  # "within seconds", on a 2-core machine shared with other work
FUZZ = settings(
    deadline=None, database=None, derandomize=False, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)


def _base_release() -> dict[str, Any]:
    return {"apiVersion": "releases.istio-canary.io/v1alpha1", "kind": "CanaryRelease",
            "metadata": {"name": "reviews"}, "spec": json.loads(json.dumps(BASE_SPEC))}


def _routing_versions(cluster: Cluster, ns: str) -> tuple[str, str]:
    vs, dr = get(cluster, "virtualservice", "reviews", ns), get(cluster, "destinationrule", "reviews", ns)
    assert vs is not None and dr is not None
    return vs["metadata"]["resourceVersion"], dr["metadata"]["resourceVersion"]


def _kubectl(cluster: Cluster, *args: str, body: Any = None) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(*args, check=False, input=None if body is None else json.dumps(body), timeout=60)


def _patch(cluster: Cluster, ns: str, patch: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    """A merge patch of the reviews release, read from stdin: a huge one does not fit on a command line."""
    return _kubectl(cluster, "patch", "canaryrelease", "reviews", "-n", ns, "--type=merge", *extra,
                    "--patch-file=/dev/stdin", body=patch)


def _answered(cluster: Cluster, ns: str, name: str) -> dict[str, Any] | None:
    obj = get(cluster, "canaryrelease", name, ns)
    status = (obj or {}).get("status") or {}
    if obj and status.get("phase") and status.get("observedGeneration") == obj["metadata"].get("generation"):
        return obj
    return None


class Tally:
    """What happened to the cases, for the campaign's record."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.slowest_answer = 0.0

    def answered_in(self, seconds: float) -> None:
        self.slowest_answer = max(self.slowest_answer, seconds)


def _start(progressing_release: ReleaseStarter) -> tuple[Cluster, str, OperatorProcess, tuple[str, str]]:
    started = progressing_release(_base_release())
    cluster, ns = progressing_release.cluster, progressing_release.namespace
    wait_for(lambda: ((get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {})
             .get("traffic", {}).get("canary") == 30, what="status at 30%")
    return cluster, ns, started.operator, _routing_versions(cluster, ns)


def _assert_untouched(cluster: Cluster, ns: str, operator: OperatorProcess, routing: tuple[str, str]) -> None:
    assert _routing_versions(cluster, ns) == routing, "the reviews routing was written"
    vs = get(cluster, "virtualservice", "reviews", ns)
    assert route_weights(vs or {}) == [{"v1": 70, "v2": 30}]
    assert operator.proc is not None and operator.proc.poll() is None, "the operator died"
    assert "failed with an exception" not in operator.logs(), "an unexpected exception in a handler"


def test_hostile_spec_edits_are_refused_or_answered_and_never_move_traffic(
    progressing_release: ReleaseStarter,
) -> None:
    cluster, ns, operator, routing = _start(progressing_release)
    tally = Tally()

    @settings(FUZZ, max_examples=EDITS)
    @given(edit=hostile_edits())
    def case(edit: dict[str, Any]) -> None:
        proc = _patch(cluster, ns, {"spec": edit})
        if proc.returncode != 0:
            assert proc.stderr.strip(), "refused without a message"
            tally.outcomes["refused"] += 1
            return
        started = time.monotonic()
        wait_for(lambda: _answered(cluster, ns, "reviews"), timeout=ANSWER_SECONDS, what=f"an answer to {edit!r}")
        tally.answered_in(time.monotonic() - started)
        tally.outcomes[f"accepted and answered: {_shape(edit)}"] += 1
        _revert(cluster, ns)

    case()
    print(f"fuzzed edits: {dict(tally.outcomes)}, slowest answer {tally.slowest_answer:.1f} s")
    assert sum(tally.outcomes.values()) >= EDITS
    _assert_untouched(cluster, ns, operator, routing)


def _shape(edit: dict[str, Any]) -> str:
    """The field an edit touches, for the tally (``traffic.match``)."""
    key = next(iter(edit))
    if key.startswith("x"):
        return "an unknown field (pruned by the API server)"
    inner = edit[key]
    return f"{key}.{next(iter(inner))}" if isinstance(inner, dict) and inner else key


def _revert(cluster: Cluster, ns: str) -> None:
    obj = get(cluster, "canaryrelease", "reviews", ns)
    assert obj is not None
    obj["spec"] = json.loads(json.dumps(BASE_SPEC))
    proc = _kubectl(cluster, "replace", "-f", "-", body=obj)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: _answered(cluster, ns, "reviews"), timeout=ANSWER_SECONDS, what="the answer to the revert")


def test_fuzzed_new_releases_are_refused_or_answered_and_every_one_deletes(
    progressing_release: ReleaseStarter,
) -> None:
    cluster, ns, operator, routing = _start(progressing_release)
    tally = Tally()

    @settings(FUZZ, max_examples=max(1, NEW_RELEASES // BATCH))
    @given(batch=st.lists(st.tuples(release_names(), release_specs()), min_size=BATCH, max_size=BATCH,
                          unique_by=lambda case: case[0]))
    def case(batch: list[tuple[str, dict[str, Any]]]) -> None:
        created = []
        for name, spec in batch:
            body = {"apiVersion": "releases.istio-canary.io/v1alpha1", "kind": "CanaryRelease",
                    "metadata": {"name": name}, "spec": spec}
            proc = _kubectl(cluster, "create", "-n", ns, "-f", "-", body=body)
            tally.outcomes["refused" if proc.returncode else "created"] += 1
            if proc.returncode == 0:
                created.append(name)
        _answer_then_delete(cluster, ns, created, tally)

    case()
    print(f"fuzzed releases: {dict(tally.outcomes)}, slowest answer or deletion {tally.slowest_answer:.1f} s")
    assert tally.outcomes["refused"] + tally.outcomes["created"] >= NEW_RELEASES
    assert tally.outcomes["deleted"] == tally.outcomes["created"]
    _assert_untouched(cluster, ns, operator, routing)


def _answer_then_delete(cluster: Cluster, ns: str, names: list[str], tally: Tally) -> None:
    started = time.monotonic()
    for name in names:
        found = wait_for(functools.partial(_answered, cluster, ns, name), timeout=ANSWER_SECONDS,
                         what=f"status of {name}")
        assert found["status"].get("message"), f"{name}: answered without a message"
    tally.answered_in(time.monotonic() - started)
    started = time.monotonic()
    for name in names:
        proc = _kubectl(cluster, "delete", "canaryrelease", name, "-n", ns, f"--timeout={ANSWER_SECONDS}s")
        assert proc.returncode == 0, f"{name} did not delete: {proc.stderr}"
        tally.outcomes["deleted"] += 1
    tally.answered_in(time.monotonic() - started)


status_writes = st.fixed_dictionaries({}, optional={
    "phase": st.sampled_from(("Completed", "Aborted", "TakenOver", "Failed", "Pending")),
    "traffic": st.fixed_dictionaries({"stable": st.integers(0, 100), "canary": st.integers(0, 100)}),
    "observedGeneration": st.integers(0, 10**6),
    # A drain that ended long ago, of either Deployment: not a reason to remove anything.
    "drain": st.fixed_dictionaries({"deployment": st.sampled_from(("reviews-v1", "reviews-v2")),
                                    "until": st.just("2000-01-01T00:00:00Z")}),
    "analysis": st.fixed_dictionaries({"step": st.integers(0, 5), "weight": st.integers(0, 100)}),
    "canaryRevision": st.text(alphabet="0123456789abcdef", max_size=16),
    "message": st.text(max_size=50),
})


# The operator is not woken by a change of status alone: a user's status.traffic stays until the
# next periodic look (every 30 s when nothing is under way), then it is read back again.
@pytest.mark.monitor(status_grace=RESYNC_SECONDS + 15)
def test_status_written_by_a_user_never_moves_traffic(progressing_release: ReleaseStarter) -> None:
    cluster, ns, operator, routing = _start(progressing_release)
    tally = Tally()

    @settings(FUZZ, max_examples=STATUS_WRITES)
    @given(status=status_writes)
    def case(status: dict[str, Any]) -> None:
        proc = _patch(cluster, ns, {"status": status}, "--subresource=status")
        tally.outcomes["refused" if proc.returncode else "written"] += 1

    case()
    # The next periodic look reads the routes back: the user's numbers are gone.
    wait_for(lambda: _said(cluster, ns) == (70, 30), timeout=RESYNC_SECONDS + 15, what="status read back again")
    print(f"status writes: {dict(tally.outcomes)}")
    assert sum(tally.outcomes.values()) >= STATUS_WRITES
    _assert_untouched(cluster, ns, operator, routing)
    _bump_and_expect_traffic(cluster, ns)


def _said(cluster: Cluster, ns: str) -> tuple[int, int]:
    traffic = ((get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {}).get("traffic") or {}
    return int(traffic.get("stable") or 0), int(traffic.get("canary") or 0)


def _bump_and_expect_traffic(cluster: Cluster, ns: str) -> None:
    """After the scribbles, a real edit is still carried out: the release was not wedged."""
    assert _patch(cluster, ns, {"spec": {"traffic": {"weight": 40}}}).returncode == 0
    wait_for(lambda: route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v1": 60, "v2": 40}],
             timeout=ANSWER_SECONDS, what="the weight edit after the status writes")
