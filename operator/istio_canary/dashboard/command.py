"""``istio-canary-operator dashboard``: its flags, and serving the application.

aiohttp and the Kubernetes client are imported only when the command runs, so building the
operator's parser stays cheap.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument("--context", default=None, help="kubeconfig context")
    parser.add_argument(
        "--prometheus-url", default=os.environ.get("PROMETHEUS_URL"),
        help="Prometheus HTTP API base URL for the charts and the topology (default: none, charts empty)",
    )  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=8443, help="port to listen on")
    parser.add_argument("--tls-cert", default=None, metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", default=None, metavar="FILE", help="the certificate's private key (PEM)")
    parser.add_argument(
        "--insecure-cookies", action="store_true",
        help="session cookie without the Secure attribute, for plain HTTP; allowed on a loopback address only",
    )  # fmt: skip
    parser.add_argument("--session-hours", type=float, default=8.0, help="how long a sign-in lasts")
    parser.add_argument("--chart-minutes", type=int, default=15, help="how far back the charts go")
    parser.add_argument(
        "--rate-window", type=int, default=60, metavar="SECONDS", help="the window of rates in charts and topology"
    )
    parser.add_argument("--log-format", choices=["json", "console", "auto"], default="auto")


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert and not args.tls_key:
        return None
    if not (args.tls_cert and args.tls_key):
        raise ValueError("give both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


def run(args: argparse.Namespace) -> int:
    import structlog
    from aiohttp import web

    from istio_canary.dashboard.kube import KubeGateway
    from istio_canary.dashboard.prom import Prometheus
    from istio_canary.dashboard.server import Settings, build_app, is_loopback
    from istio_canary.k8s.cluster import load_client
    from istio_canary.logs import configure_logging

    configure_logging(json_format={"json": True, "console": False, "auto": None}[args.log_format])
    if args.insecure_cookies and not is_loopback(args.host):
        print("error: --insecure-cookies is allowed only with a loopback --host", file=sys.stderr)
        return 2
    try:
        tls = _tls(args)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = Settings(
        secure_cookies=not args.insecure_cookies,
        session_seconds=int(args.session_hours * 3600),
        chart_minutes=args.chart_minutes,
        rate_window_seconds=args.rate_window,
    )
    prometheus = Prometheus(args.prometheus_url) if args.prometheus_url else None
    app = build_app(kube=KubeGateway(load_client(args.kubeconfig, args.context)), prometheus=prometheus,
                    settings=settings)  # fmt: skip
    if prometheus is not None:
        app.on_cleanup.append(lambda _app: prometheus.close())
    structlog.get_logger("istio_canary.dashboard").info(
        "dashboard listening", host=args.host, port=args.port, tls=tls is not None, prometheus=bool(prometheus)
    )
    web.run_app(app, host=args.host, port=args.port, ssl_context=tls, print=None)
    return 0
