"""The API server's audit log: who wrote what, so a benchmark can count the operator's writes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = ["AUDIT_POLICY", "BENCH_USER_AGENT", "AuditWrite", "operator_writes", "read_audit_writes"]

BENCH_USER_AGENT = "istio-canary-bench"
"""The benchmark's own requests carry this User-Agent, so the audit log tells them apart."""

# Writes only, at Metadata level: enough to count who wrote what, small enough to read back.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
"""
_WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass(frozen=True)
class AuditWrite:
    time: float
    user_agent: str
    verb: str
    resource: str
    namespace: str
    name: str


def read_audit_writes(path: Path, *, offset: int = 0) -> tuple[list[AuditWrite], int]:
    """Write requests in the audit log from byte ``offset`` on, and the offset after the last full line."""
    if not path.exists():
        return [], offset
    out: list[AuditWrite] = []
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("stage") != "ResponseComplete" or ev.get("verb") not in _WRITE_VERBS:
            continue
        ref = ev.get("objectRef") or {}
        resource = ref.get("resource", "") + (
            f"/{ref['subresource']}" if ref.get("subresource") else ""
        )
        stamp = ev.get("stageTimestamp", "")
        out.append(
            AuditWrite(
                time=_rfc3339(stamp),
                user_agent=ev.get("userAgent", ""),
                verb=ev["verb"],
                resource=resource,
                namespace=ref.get("namespace", ""),
                name=ref.get("name", ""),
            )
        )
    return out, offset + end


def _rfc3339(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return 0.0


def operator_writes(writes: Iterable[AuditWrite], namespaces: Sequence[str]) -> list[AuditWrite]:
    """Writes made by the operator (kopf or its kubernetes client) in the fleet's namespaces."""
    wanted = set(namespaces)
    return [
        w
        for w in writes
        if w.namespace in wanted
        and not w.user_agent.startswith((BENCH_USER_AGENT, "kube-", "kwok", "kubectl"))
    ]
