"""Scale benchmark: 1,000 CanaryReleases under one operator process, memory and CPU.

Run from the repository root, with the operator package installed::

    python bench/scale.py --releases 1000 --per-namespace 20

design.md section 6 asks for 1,000 CanaryReleases under one operator process in under 250 MB
of memory. On its own kwok cluster (three fake nodes, room for 3,000 pods), the benchmark
creates the services, stable Deployments and releases, waits until every stable pod is
ready, then starts one operator (``--all-namespaces``) and samples its RSS and CPU time
(psutil) every 0.5 s: while it converges (every release Progressing, 1,000 canary Deployments
created and routed) and then for ``--steady-seconds`` with nothing changing. Results and
discussion: docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid

from _audit import operator_writes, read_audit_writes
from _cluster import BenchCluster
from _fleet import Fleet
from _process import OperatorProcess
from rich.console import Console
from rich.table import Table

console = Console()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--per-namespace", type=int, default=20)
    parser.add_argument("--steady-seconds", type=float, default=60)
    parser.add_argument("--converge-timeout", type=float, default=600)
    parser.add_argument("--cluster", default="istio-canary-bench")
    parser.add_argument(
        "--keep", action="store_true", help="keep the releases' namespaces afterwards"
    )
    parser.add_argument("--down", action="store_true", help="delete the cluster afterwards")
    args = parser.parse_args()

    cluster = BenchCluster(name=args.cluster, fake_nodes=-(-2 * args.releases // 1000) + 1)
    cluster.up()
    fleet = Fleet(
        cluster.bench_client(),
        size=args.releases,
        per_namespace=args.per_namespace,
        prefix=f"bench-scale-{uuid.uuid4().hex[:4]}",
    )
    op: OperatorProcess | None = None
    try:
        started = time.monotonic()
        fleet.create(weight=10)
        created = time.monotonic() - started
        print(
            f"{args.releases} services, Deployments and releases created in {created:.0f} s",
            file=sys.stderr,
        )
        while fleet.ready_stable() < args.releases:
            time.sleep(2)
        print(
            f"stable pods ready {time.monotonic() - started:.0f} s after the start", file=sys.stderr
        )

        _, audit_offset = read_audit_writes(cluster.audit_log)
        op = OperatorProcess(
            kubeconfig=cluster.kubeconfig,
            namespaces=[],
            log_path=cluster.state_dir / "operator-bench-scale.log",
            extra=["--all-namespaces"],
        ).start()
        try:
            converge = fleet.wait_for_phase("Progressing", timeout=args.converge_timeout)
        except TimeoutError as err:
            # Still worth measuring: the memory of a process holding every release.
            print(f"not converged: {err}", file=sys.stderr)
            converge = args.converge_timeout
        progressing = sum(1 for p in fleet.phases().values() if p == "Progressing")
        converge_cpu = op.samples[-1].cpu_s if op.samples else float("nan")
        converge_peak = op.peak_hwm_mb()
        writes, audit_offset = read_audit_writes(cluster.audit_log, offset=audit_offset)
        converge_writes = len(operator_writes(writes, fleet.namespaces))
        print(
            f"all {args.releases} Progressing after {converge:.0f} s; steady for {args.steady_seconds:.0f} s",
            file=sys.stderr,
        )

        steady_from = time.monotonic() - op.started
        time.sleep(args.steady_seconds)
        steady_to = time.monotonic() - op.started
        steady = [s for s in op.samples if steady_from <= s.t <= steady_to]
        steady_cpu = op.cpu_between(steady_from, steady_to)
        writes, _ = read_audit_writes(cluster.audit_log, offset=audit_offset)
        steady_writes = len(operator_writes(writes, fleet.namespaces))
        weights = fleet.canary_weights()
        routed = sum(1 for w in weights.values() if w == 10)

        table = Table(
            title=f"{args.releases} CanaryReleases, {args.per_namespace} per namespace, one operator process"
        )
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("fleet created (Services, Deployments, releases)", f"{created:.0f} s")
        table.add_row("operator start -> every release Progressing", f"{converge:.0f} s")
        table.add_row("releases Progressing at that point", f"{progressing}/{args.releases}")
        table.add_row("VirtualServices routing 10% to the canary", f"{routed}/{args.releases}")
        table.add_row(
            "operator CPU while converging",
            f"{converge_cpu:.0f} s ({100 * converge_cpu / converge:.0f}% of a core)",
        )
        table.add_row("operator API writes while converging", str(converge_writes))
        table.add_row("RSS peak (VmHWM) while converging", f"{converge_peak:.0f} MB")
        if steady:
            rss = [s.rss_mb for s in steady]
            table.add_row(
                f"RSS steady, {args.steady_seconds:.0f} s: mean / max",
                f"{statistics.fmean(rss):.0f} / {max(rss):.0f} MB",
            )
        table.add_row("RSS peak (VmHWM) overall", f"{op.peak_hwm_mb():.0f} MB")
        table.add_row(
            f"operator CPU steady, {args.steady_seconds:.0f} s",
            f"{steady_cpu:.1f} s ({100 * steady_cpu / args.steady_seconds:.0f}% of a core)",
        )
        table.add_row("operator API writes while steady", str(steady_writes))
        console.print(table)
        timeline = Table(title="operator RSS over time")
        timeline.add_column("t (s)", justify="right")
        timeline.add_column("RSS (MB)", justify="right")
        timeline.add_column("CPU (s)", justify="right")
        step = max(1, len(op.samples) // 12)
        for s in op.samples[::step]:
            timeline.add_row(f"{s.t:.0f}", f"{s.rss_mb:.0f}", f"{s.cpu_s:.0f}")
        console.print(timeline)
    finally:
        if op is not None:
            op.stop()
        if not args.keep:
            fleet.delete()
        if args.down:
            cluster.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
