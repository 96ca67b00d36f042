"""``make demo``: the Bookinfo canary release, end to end, in about a minute or two.

On the local control plane (``--cluster local``, the default) it starts a cluster of its own
(named ``istio-canary-demo``, so it never touches the test cluster), building the control
plane first if this machine has never built it. With ``--cluster current`` it uses the current
kubeconfig's cluster after asking for confirmation. Either way it starts Prometheus, runs the
flow of ``demo_flow.run_demo`` and removes everything it started before it exits, also on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from demo_flow import HERE, DemoError, Target, run_demo
from devcluster import Cluster, ClusterError, PrometheusServer
from istio_canary.models.marks import GROUP, ISTIO_GROUP, PLURAL
from rich.console import Console

DEMO_CLUSTER = "istio-canary-demo"
ISTIO_CRDS = (f"virtualservices.{ISTIO_GROUP}", f"destinationrules.{ISTIO_GROUP}")
CANARY_CRD = f"{PLURAL}.{GROUP}"


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cluster", choices=("local", "current"), default="local",
        help="local: a local control plane of its own; current: the current kubeconfig's cluster",
    )
    parser.add_argument("--namespace", default="bookinfo", help="namespace for Bookinfo (default: bookinfo)")
    parser.add_argument("--yes", action="store_true", help="with --cluster current: do not ask")
    parser.add_argument("--split-seconds", type=float, default=10.0, help="how long to show the live split")
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments().parse_args(argv)
    console = Console()
    signal.signal(signal.SIGTERM, _interrupt)
    with ExitStack() as cleanup:
        try:
            target: Target | None
            if args.cluster == "local":
                target = _local_cluster(console, cleanup)
            else:
                target = _current_cluster(console, cleanup, namespace=args.namespace, assume_yes=args.yes)
            if target is None:
                return 2
            with console.status("Starting Prometheus"):
                prometheus = PrometheusServer(scrape_interval="1s")
                prometheus.start()
                cleanup.callback(prometheus.stop)
            console.print(f"[green]✓[/green] Prometheus at {prometheus.url}")
            run_demo(target, namespace=args.namespace, prometheus=prometheus, console=console,
                     split_seconds=args.split_seconds)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: cleaning up[/yellow]")
            return 130
        except (DemoError, ClusterError) as error:
            console.print(f"[red]demo failed:[/red] {error}")
            return 1
        finally:
            console.print("cleaning up: stopping what the demo started")
    return 0


def _local_cluster(console: Console, cleanup: ExitStack) -> Target:
    cluster = Cluster(name=DEMO_CLUSTER)
    if not (cluster.bin_dir / "kube-apiserver").exists():
        console.print(
            "[bold]First run:[/bold] building the Kubernetes control plane from source. This takes "
            "20-30 minutes on 2 cores and needs ~6 GB of disk and ~3 GB of memory; later runs reuse it."
        )
    cluster.build()
    cleanup.callback(cluster.down)  # registered before up(): a half-started cluster goes too
    with console.status(f"Starting the local control plane {DEMO_CLUSTER}"):
        cluster.up()
    console.print(f"[green]✓[/green] local control plane {DEMO_CLUSTER} is up")
    # The local control plane comes up with istiod: the simulator routes by istiod's routes.
    return Target(kubeconfig=cluster.kubeconfig, kubectl_binary=str(cluster.bin_dir / "kubectl"),
                  istiod=cluster.istiod.grpc_address)


def _current_cluster(console: Console, cleanup: ExitStack, *, namespace: str, assume_yes: bool) -> Target | None:
    """The current kubeconfig's cluster, once the user agreed; ``None`` when they did not."""
    kubeconfig = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0] or str(Path.home() / ".kube" / "config")
    kubectl = shutil.which("kubectl") or str(HERE.parents[1] / ".bin" / "kubectl")
    target = Target(kubeconfig=kubeconfig, kubectl_binary=kubectl)
    context = target.kubectl("config", "current-context").strip()
    if target.kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name").strip():
        console.print(f"[red]namespace {namespace} already exists;[/red] pass --namespace with a new name")
        return None
    missing = [crd for crd in ISTIO_CRDS if not target.kubectl("get", "crd", crd, "--ignore-not-found").strip()]
    if missing:
        console.print(f"[red]this cluster has no Istio CRDs ({', '.join(missing)}):[/red] install Istio first")
        return None
    install_crd = not target.kubectl("get", "crd", CANARY_CRD, "--ignore-not-found").strip()
    console.print(
        f"The demo will use the cluster of context [bold]{context}[/bold]: create namespace "
        f"{namespace}, deploy Bookinfo there, run the operator from this machine for that "
        f"namespace only, and delete the namespace at the end."
        + (" It will also install the CanaryRelease CRD." if install_crd else "")
    )
    if not assume_yes:
        if not sys.stdin.isatty():
            console.print("[red]not a terminal: refusing without confirmation;[/red] pass --yes to go ahead")
            return None
        if console.input("Continue? [y/N] ").strip().lower() not in ("y", "yes"):
            console.print("nothing done")
            return None
    if install_crd:
        target.kubectl("apply", "--server-side", "-f", str(HERE.parents[1] / "crds"))
        target.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", CANARY_CRD)
    target.kubectl("create", "namespace", namespace)
    target.kubectl("label", "namespace", namespace, "istio-injection=enabled")
    cleanup.callback(target.kubectl, "delete", "namespace", namespace, "--wait=false", check=False)
    return target


if __name__ == "__main__":
    sys.exit(main())
