"""Control-loop benchmark: how fast a spec change reaches the VirtualService, and idle writes.

Run from the repository root, with the operator package installed::

    python bench/control_loop.py --releases 500 --per-namespace 100

design.md section 6 asks for: a spec change reaches the VirtualService in p99 under 100 ms
with one release and under 1 s with 500 releases changing at once; zero API writes when
nothing changed. On its own kwok cluster (audit log on), the benchmark:

1. one release alone under one operator: ``--changes`` weight changes, one at a time;
2. ``--releases`` releases under one operator: the same one-at-a-time changes, then every
   release's weight changed at once;
3. the fleet left alone for ``--idle-seconds``: the operator's writes counted in the API
   server's audit log, and every CanaryRelease/VirtualService/DestinationRule/Deployment
   resourceVersion compared before and after.

Latency is from the PATCH of ``spec.traffic.weight`` returning to a watch on the namespace's
VirtualServices delivering the new weight. Results and discussion: docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _audit import operator_writes, read_audit_writes
from _cluster import BenchCluster
from _fleet import Fleet
from _numbers import percentiles
from _process import OperatorProcess
from _watcher import WeightWatcher
from rich.console import Console
from rich.table import Table

console = Console(stderr=False)


def _latency_row(table: Table, label: str, values: list[float], *, expected: int) -> None:
    p = percentiles([v * 1000 for v in values])
    print(
        f"  {label}: p50 {p['p50']:.0f} p95 {p['p95']:.0f} p99 {p['p99']:.0f} max {p['max']:.0f} ms",
        file=sys.stderr,
    )
    table.add_row(
        label,
        f"{p['n']}/{expected}",
        *(f"{p[k]:.0f}" for k in ("p50", "p95", "p99", "max")),
    )


def one_at_a_time(
    fleet: Fleet, watcher: WeightWatcher, *, changes: int, first_weight: int
) -> list[float]:
    """``changes`` weight changes, each to the next release in turn, waiting for each to land."""
    refs = fleet.releases()
    out: list[float] = []
    for k in range(changes):
        key = refs[k % len(refs)]
        weight = first_weight + k % 40
        sent = time.monotonic()
        returned = fleet.set_weight(key[0], key[1], weight)
        seen = watcher.wait_all({key: weight}, after=sent, timeout=30)
        if key in seen:
            out.append(max(0.0, seen[key] - returned))
        else:
            print(f"  change {k}: {key} never showed weight {weight}", file=sys.stderr)
        time.sleep(0.1)
    return out


def all_at_once(
    fleet: Fleet, watcher: WeightWatcher, *, weight: int, threads: int
) -> tuple[list[float], float]:
    """Every release's weight changed at once; per-release latencies and the whole wave's duration."""
    refs = fleet.releases()
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        returned = dict(
            zip(
                refs,
                pool.map(lambda ref: fleet.set_weight(ref[0], ref[1], weight), refs),
                strict=True,
            )
        )
    patched = time.monotonic() - started
    seen = watcher.wait_all(dict.fromkeys(refs, weight), after=started, timeout=180)
    wave = max(seen.values(), default=started) - started
    print(
        f"  {len(refs)} PATCHes sent in {patched:.2f} s; last VirtualService updated {wave:.2f} s after the first",
        file=sys.stderr,
    )
    return [max(0.0, seen[ref] - returned[ref]) for ref in refs if ref in seen], wave


def idle_writes(
    cluster: BenchCluster, fleet: Fleet, *, seconds: float
) -> tuple[Counter[str], list[str]]:
    """Operator writes in the audit log, and objects whose resourceVersion changed, over ``seconds`` idle."""
    _, offset = read_audit_writes(cluster.audit_log, offset=0)
    before = fleet.resource_versions()
    time.sleep(seconds)
    after = fleet.resource_versions()
    writes, _ = read_audit_writes(cluster.audit_log, offset=offset)
    counted = Counter(
        f"{w.verb} {w.resource} ({w.user_agent.split('/')[0]})"
        for w in operator_writes(writes, fleet.namespaces)
    )
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return counted, changed


def wait_settled(fleet: Fleet, watcher: WeightWatcher, *, quiet: float, timeout: float) -> None:
    """Until no VirtualService event arrived for ``quiet`` seconds (statuses follow within one reconcile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = max((t for events in watcher.seen.values() for t, _ in events), default=0.0)
        if time.monotonic() - last >= quiet:
            return
        time.sleep(0.5)


def run_fleet(
    cluster: BenchCluster, *, size: int, per_namespace: int, prefix: str, log_dir: Path
) -> tuple[Fleet, OperatorProcess, WeightWatcher]:
    fleet = Fleet(cluster.bench_client(), size=size, per_namespace=per_namespace, prefix=prefix)
    started = time.monotonic()
    fleet.create(weight=10)
    print(
        f"{prefix}: {size} services, Deployments and releases created in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    op = OperatorProcess(
        kubeconfig=cluster.kubeconfig,
        namespaces=fleet.namespaces,
        log_path=log_dir / f"operator-{prefix}.log",
    ).start()
    try:
        took = fleet.wait_for_phase("Progressing", timeout=300)
    except BaseException:
        op.stop()
        fleet.delete()
        raise
    print(
        f"{prefix}: all {size} Progressing {took:.1f} s after the operator started", file=sys.stderr
    )
    watcher = WeightWatcher(fleet.api, fleet.namespaces).start()
    return fleet, op, watcher


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--releases", type=int, default=500)
    parser.add_argument("--per-namespace", type=int, default=100)
    parser.add_argument("--changes", type=int, default=50, help="one-at-a-time changes per stage")
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--patch-threads", type=int, default=16)
    parser.add_argument("--cluster", default="istio-canary-bench")
    parser.add_argument(
        "--keep", action="store_true", help="keep the cluster and namespaces afterwards"
    )
    args = parser.parse_args()

    run = uuid.uuid4().hex[:4]  # namespaces of an earlier run may still be terminating
    cluster = BenchCluster(name=args.cluster)
    cluster.up()
    log_dir = cluster.state_dir
    table = Table(title="spec.traffic.weight PATCH -> VirtualService (ms)")
    for col in ("case", "seen", "p50", "p95", "p99", "max"):
        table.add_column(col, justify="left" if col == "case" else "right")
    extra: list[str] = []
    fleets: list[tuple[Fleet, OperatorProcess, WeightWatcher]] = []
    try:
        # 1. One release under one operator.
        fleets.append(
            run_fleet(cluster, size=1, per_namespace=1, prefix=f"bench-one-{run}", log_dir=log_dir)
        )
        fleet, op, watcher = fleets[-1]
        _latency_row(
            table,
            "1 release, one change at a time",
            one_at_a_time(fleet, watcher, changes=args.changes, first_weight=11),
            expected=args.changes,
        )
        op.stop()
        watcher.stop()

        # 2. N releases under one operator.
        fleets.append(
            run_fleet(
                cluster,
                size=args.releases,
                per_namespace=args.per_namespace,
                prefix=f"bench-cl-{run}",
                log_dir=log_dir,
            )
        )
        fleet, op, watcher = fleets[-1]
        wait_settled(fleet, watcher, quiet=3, timeout=60)
        _latency_row(
            table,
            f"{args.releases} releases, one change at a time",
            one_at_a_time(fleet, watcher, changes=args.changes, first_weight=11),
            expected=args.changes,
        )
        wait_settled(fleet, watcher, quiet=3, timeout=60)
        cpu0 = op.samples[-1].cpu_s if op.samples else 0.0
        latencies, wave = all_at_once(fleet, watcher, weight=70, threads=args.patch_threads)
        _latency_row(
            table, f"{args.releases} releases changed at once", latencies, expected=args.releases
        )
        extra.append(
            f"all at once: last VirtualService updated {wave:.2f} s after the first PATCH was sent"
        )

        # 3. Idle.
        wait_settled(fleet, watcher, quiet=5, timeout=120)
        time.sleep(5)  # status writes follow the VirtualService within one reconcile
        cpu1 = op.samples[-1].cpu_s if op.samples else 0.0
        extra.append(f"operator CPU during the all-at-once wave and settling: {cpu1 - cpu0:.1f} s")
        t_idle = time.monotonic() - op.started
        counted, changed = idle_writes(cluster, fleet, seconds=args.idle_seconds)
        cpu_idle = op.cpu_between(t_idle, time.monotonic() - op.started)
        console.print(table)
        idle = Table(title=f"{args.releases} releases left alone for {args.idle_seconds:.0f} s")
        idle.add_column("measure")
        idle.add_column("value", justify="right")
        idle.add_row("operator writes in the audit log", str(sum(counted.values())))
        for what, n in counted.most_common():
            idle.add_row(f"  {what}", str(n))
        idle.add_row("objects whose resourceVersion changed", str(len(changed)))
        for key in changed[:10]:
            idle.add_row(f"  {key}", "")
        idle.add_row(
            "operator CPU seconds while idle",
            f"{cpu_idle:.1f} ({100 * cpu_idle / args.idle_seconds:.0f}% of a core)",
        )
        rss = op.samples[-1].rss_mb if op.samples else float("nan")
        idle.add_row("operator RSS (MB)", f"{rss:.0f}")
        console.print(idle)
        for line in extra:
            console.print(line)
    finally:
        for fleet, op, watcher in fleets:
            watcher.stop()
            op.stop()
            if not args.keep:
                fleet.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
