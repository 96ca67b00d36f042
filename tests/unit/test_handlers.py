"""The kopf wiring: what kopf keeps of a release, and how reconcile outcomes become kopf's answers.

The reconciler is replaced by a stand-in that returns a given outcome or raises a given error;
everything else is kopf's own Body, Patch and Memo.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest
from istio_canary import errors, handlers
from istio_canary.models import CanaryReleaseStatus, Phase
from istio_canary.phases import Decision
from istio_canary.reconcile import Outcome

PREFIX = "releases.istio-canary.io"
KEY = f"{PREFIX}/last-handled-configuration"
# kopf's decorators type a handler for kopf's own calls (every kwarg); the tests call the
# functions as they are written.
on_change: Any = handlers.on_change
on_delete: Any = handlers.on_delete


def release(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> kopf.Body:
    meta = {"name": "reviews", "namespace": "bookinfo", "uid": "u-1", "annotations": annotations or {}}
    raw: Any = {"apiVersion": f"{PREFIX}/v1alpha1", "kind": "CanaryRelease", "metadata": meta, "spec": spec}
    return kopf.Body(raw)


def storage() -> handlers.HashDiffBaseStorage:
    return handlers.HashDiffBaseStorage(prefix=PREFIX, key="last-handled-configuration")


def stored_annotations(spec: dict[str, Any]) -> dict[str, str]:
    """The annotations kopf writes after handling a release with ``spec``."""
    body, patch = release(spec), kopf.Patch()
    storage().store(body=body, patch=patch, essence=storage().build(body=body))
    return dict(patch["metadata"]["annotations"])


class StandIn:
    """A reconciler that answers every reconcile with ``outcome`` or raises ``error``."""

    def __init__(self, *, outcome: Outcome | None = None, error: Exception | None = None) -> None:
        self.outcome, self.error = outcome, error
        self.forgotten: list[tuple[str, str]] = []

    async def reconcile(self, **_: Any) -> Outcome:
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome

    def forget(self, *, namespace: str, name: str) -> None:
        self.forgotten.append((namespace, name))


def memo_with(reconciler: StandIn) -> kopf.Memo:
    memo = kopf.Memo()
    memo.reconciler = reconciler
    return memo


def outcome(*, done: bool, requeue_after: float | None = None, spec_invalid: bool = False) -> Outcome:
    decision = Decision(phase=Phase.PROGRESSING, reason="Deleting", message="draining", done=done,
                        requeue_after=requeue_after)  # fmt: skip
    return Outcome(decision=decision, status=CanaryReleaseStatus(), status_patch=None, writes=0,
                   spec_invalid=spec_invalid)  # fmt: skip


class TestWhatKopfKeeps:
    def test_the_last_handled_spec_is_kept_as_a_hash_not_a_copy(self) -> None:
        spec = {"service": "reviews", "traffic": {"match": [{"headers": {"x": {"exact": "a" * 500}}}]}}
        annotations = stored_annotations(spec)

        assert annotations[KEY].startswith("sha256:") and len(annotations[KEY]) == len("sha256:") + 64
        assert "a" * 500 not in "".join(annotations.values())

    def test_the_same_spec_reads_back_as_no_change_and_another_as_a_change(self) -> None:
        annotations = stored_annotations({"service": "reviews"})
        same = release({"service": "reviews"}, annotations)
        edited = release({"service": "ratings"}, annotations)

        assert storage().fetch(body=same) == storage().build(body=same)
        assert storage().fetch(body=edited) == {}
        assert storage().fetch(body=release({"service": "reviews"})) is None  # never handled


class TestReconcileOutcomes:
    def test_a_conflict_is_retried_at_once_by_kopf(self) -> None:
        memo = memo_with(StandIn(error=errors.ConflictError("changed since it was read")))

        with pytest.raises(kopf.TemporaryError, match="changed since it was read") as raised:
            asyncio.run(on_change(release({"service": "reviews"}), kopf.Patch(), memo))
        assert raised.value.delay == 0.5

    def test_a_delete_not_yet_undone_keeps_the_finalizer_and_comes_back_when_due(self) -> None:
        reconciler = StandIn(outcome=outcome(done=False, requeue_after=7))
        meta = release({"service": "reviews"}).metadata

        with pytest.raises(kopf.TemporaryError, match="draining") as raised:
            asyncio.run(on_delete(release({}), kopf.Patch(), memo_with(reconciler), meta))
        assert raised.value.delay == 7
        assert reconciler.forgotten == []

    def test_a_finished_delete_lets_the_finalizer_go_and_forgets_the_release(self) -> None:
        reconciler = StandIn(outcome=outcome(done=True))
        meta = release({"service": "reviews"}).metadata

        asyncio.run(on_delete(release({}), kopf.Patch(), memo_with(reconciler), meta))
        assert reconciler.forgotten == [("bookinfo", "reviews")]

    def test_a_spec_that_never_parsed_deletes_at_once(self) -> None:
        reconciler = StandIn(outcome=outcome(done=False, spec_invalid=True))
        meta = release({}).metadata

        asyncio.run(on_delete(release({}), kopf.Patch(), memo_with(reconciler), meta))
        assert reconciler.forgotten == []
