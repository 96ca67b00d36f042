"""The ``istio-canary-operator`` command."""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from istio_canary import errors
from istio_canary.outbound import header_problem

if TYPE_CHECKING:
    from istio_canary.analysis.egress import Egress
    from istio_canary.analysis.prometheus import PrometheusMetrics
    from istio_canary.notifications.sender import Notifier
    from istio_canary.reconcile import Reconciler

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="istio-canary-operator",
        description="Canary releases on Istio, driven by CanaryRelease objects.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], metavar="NAME",
        help="watch this namespace (repeatable; a glob like 'team-*' works too)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    run.add_argument("--context", default=None, help="kubeconfig context")
    _prometheus_arguments(run)
    _notification_arguments(run)
    _outbound_arguments(run)
    _timing_arguments(run)
    run.add_argument("--metrics-port", type=int, default=None, help="serve the operator's own metrics on this port")
    run.add_argument("--liveness", default=None, metavar="URL", help="kopf health endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument(
        "--peering", default=None, metavar="NAME", help="kopf peering object (several replicas, one active)"
    )
    run.add_argument(
        "--priority", type=int, default=None,
        help="kopf peering priority; default: random when peering, so one replica is active and the others stand by",
    )
    run.add_argument("--log-format", choices=["json", "console", "auto"], default="auto")
    run.add_argument("-v", "--verbose", action="store_true")
    from istio_canary.dashboard import command as dashboard

    dashboard.add_arguments(sub.add_parser("dashboard", help="serve the web dashboard (docs/dashboard.md)"))
    return parser


def _prometheus_arguments(run: argparse.ArgumentParser) -> None:
    prometheus = run.add_argument_group("Prometheus", "the operator's own Prometheus (docs/analysis.md)")
    prometheus.add_argument(
        "--prometheus-url", default=os.environ.get("PROMETHEUS_URL"), help="Prometheus HTTP API base URL"
    )
    prometheus.add_argument(
        "--prometheus-credentials-dir", type=Path, default=None, metavar="DIR",
        help="a mounted Secret: file token (bearer), or username and password (basic auth), and/or ca.crt; "
        "read again at every query, so a rotated token is used at once",
    )
    prometheus.add_argument(
        "--prometheus-header", action="append", default=[], metavar="NAME=VALUE",
        help="a header for every query, e.g. X-Scope-OrgID=mesh (repeatable)",
    )
    prometheus.add_argument(
        "--prometheus-insecure-skip-tls-verify", action="store_true",
        help="accept any TLS certificate from --prometheus-url (tests only)",
    )


def _notification_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--notification-receiver", action="append", default=[], metavar="SPEC",
        help="a receiver of release notices: name=NAME,type=Slack|MSTeams|Discord|GoogleChat|Webhook,"
        "url-file=FILE (a mounted Secret),severity=Info|Warning|Error,default=true|false (repeatable; "
        "releases pick receivers by name in spec.notifications, or get the default ones)",
    )


def _outbound_arguments(run: argparse.ArgumentParser) -> None:
    outbound = run.add_argument_group(
        "outbound policy", "which URLs a CanaryRelease may make the operator call (docs/security.md)"
    )
    outbound.add_argument(
        "--allow-release-prometheus-urls", action="store_true",
        help="let releases name their own spec.analysis.prometheusUrl, under an --allowed-url-prefix; "
        "default: only --prometheus-url is ever queried",
    )
    outbound.add_argument(
        "--allowed-url-prefix", action="append", default=[], metavar="URL",
        help="a URL prefix releases may name, e.g. https://prometheus.team-a.example/ (repeatable; "
        "scheme, host and port must match, the path is a prefix of whole segments)",
    )
    outbound.add_argument(
        "--allowed-webhook-prefix", action="append", default=[], metavar="URL",
        help="a URL prefix spec.webhooks[].url may name, e.g. http://loadtester.test:8080/ (repeatable; "
        "scheme, host and port must match); default: none, and a release with webhooks fails",
    )
    outbound.add_argument(
        "--refuse-network", action="append", default=[], metavar="CIDR",
        help="never connect to this network, e.g. the cluster's Service range (repeatable); "
        "link-local and metadata addresses are always refused",
    )


def _timing_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--metrics-interval", type=float, default=10.0, help="seconds between per-version metric refreshes"
    )
    run.add_argument(
        "--metrics-window", type=int, default=60, metavar="SECONDS",
        help="the window of the per-version request rate, success rate and latency in status",
    )
    run.add_argument(
        "--resync-seconds", type=float, default=None, metavar="SECONDS",
        help="how often a release is looked at again when nothing it watches changed (default: 30)",
    )
    run.add_argument(
        "--drain-seconds", type=int, default=10, metavar="SECONDS",
        help="default of spec.drainSeconds: how long a version that lost its traffic is kept before it is removed",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "dashboard":
        from istio_canary.dashboard import command as dashboard

        return dashboard.run(args)
    return 2


def _run(args: argparse.Namespace) -> int:
    import kopf

    from istio_canary import handlers  # noqa: F401 - registers the handlers
    from istio_canary import metrics as opmetrics
    from istio_canary.logs import configure_logging

    configure_logging(json_format={"json": True, "console": False, "auto": None}[args.log_format], verbose=args.verbose)
    if not args.namespace and not args.all_namespaces:
        print("error: give --namespace NAME (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    try:
        egress = _egress(args)
        reconciler = _reconciler(args, egress)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.metrics_port:
        opmetrics.start_metrics_server(args.metrics_port)
    priority = args.priority
    if priority is None and args.peering is not None:
        # kopf pauses every operator that sees a peer of the same priority; distinct priorities
        # make exactly one replica active and let a standby take over when it dies.
        priority = random.SystemRandom().randint(1, 10_000)
    kopf.run(
        priority=priority or 0,
        clusterwide=args.all_namespaces,
        namespaces=args.namespace,
        standalone=args.peering is None,
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(reconciler=reconciler),
    )
    return 0


def _reconciler(args: argparse.Namespace, egress: Egress) -> Reconciler:
    """The reconciler over the cluster adapter (wrapped for fault injection when asked) and Prometheus."""
    from istio_canary.k8s.cluster import Cluster, load_client
    from istio_canary.k8s.faults import CRASH_AFTER_WRITES_ENV, CrashAfterWrites
    from istio_canary.reconcile import ClusterWriter, Reconciler, Settings

    prometheus = None
    if args.prometheus_url:

        prometheus = _operator_prometheus(args, egress)
    cluster: ClusterWriter = Cluster(load_client(args.kubeconfig, args.context))
    crash = os.environ.get(CRASH_AFTER_WRITES_ENV)
    if crash:  # restart-safety tests only: the process dies right after that many writes
        cluster = CrashAfterWrites(cluster, writes=int(crash))
    settings = Settings(
        metrics_interval_seconds=args.metrics_interval,
        metrics_window_seconds=args.metrics_window,
        drain_seconds=args.drain_seconds,
        egress=egress,
        **({"resync_seconds": args.resync_seconds} if args.resync_seconds is not None else {}),
    )
    return Reconciler(cluster=cluster, settings=settings, prometheus=prometheus, notifier=_notifier(args, egress))


def _notifier(args: argparse.Namespace, egress: Egress) -> Notifier | None:
    """The sender of notices to the --notification-receiver receivers (ValueError names a bad one)."""
    from istio_canary.notifications.notice import parse_receiver
    from istio_canary.notifications.sender import Notifier

    receivers = []
    for text in args.notification_receiver:
        try:
            receivers.append(parse_receiver(text))
        except ValueError as err:
            raise ValueError(f"--notification-receiver {text!r}: {err}") from None
    names = [r.name for r in receivers]
    if len(set(names)) != len(names):
        raise ValueError("--notification-receiver: two receivers have the same name")
    return Notifier(receivers, egress=egress) if receivers else None


def _operator_prometheus(args: argparse.Namespace, egress: Egress) -> PrometheusMetrics:
    """The client of --prometheus-url with its credentials and headers (ValueError names a bad flag)."""
    from istio_canary.analysis.prometheus import PrometheusMetrics, read_credentials_dir

    headers = {}
    for item in args.prometheus_header:
        name, sep, value = item.partition("=")
        problem = header_problem(name, value) if sep else "is not NAME=VALUE"
        if problem:
            raise ValueError(f"--prometheus-header {name if sep else item!r} {problem}")
        headers[name] = value
    credentials_dir = args.prometheus_credentials_dir
    try:
        return PrometheusMetrics(
            args.prometheus_url, egress=egress, headers=headers,
            credentials=(lambda: read_credentials_dir(credentials_dir)) if credentials_dir else None,
            verify_tls=not args.prometheus_insecure_skip_tls_verify,
        )
    except (errors.CredentialsError, ValueError) as err:
        raise ValueError(f"--prometheus-credentials-dir: {err}") from None


def _egress(args: argparse.Namespace) -> Egress:
    """The outbound policy from the flags (ValueError names the flag value that is wrong)."""
    from istio_canary.analysis.egress import Egress, Resolver
    from istio_canary.outbound import OutboundPolicy

    policy = OutboundPolicy.build(
        prometheus_url=args.prometheus_url,
        allow_release_prometheus_urls=args.allow_release_prometheus_urls,
        allowed_url_prefixes=args.allowed_url_prefix,
        refused_networks=args.refuse_network,
        allowed_webhook_prefixes=args.allowed_webhook_prefix,
    )
    # Fixed resolver answers, "host=address,...", like curl's --resolve: the e2e tests point a
    # name at a link-local address with no DNS server. They are checked like any other answer.
    resolver = Resolver.from_text(os.environ.get("ISTIO_CANARY_RESOLVE", ""))
    return Egress(policy=policy, resolver=resolver)


if __name__ == "__main__":
    sys.exit(main())
