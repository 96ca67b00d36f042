"""``istio-canary-meshsim``: run the mesh simulator against a cluster.

    istio-canary-meshsim --kubeconfig K --namespace bookinfo --listen 127.0.0.1:9901 \\
        --istiod 127.0.0.1:15010 \\
        --rps reviews=20 --mix 'reviews=[{"fraction": 0.1, "headers": {"end-user": "jason"}}]' \\
        --behaviour reviews/v2=errorRate=0.1,p50=20,p99=80

With ``--istiod`` (istiod's plaintext xDS address) requests are routed by the Envoy
configuration istiod generates for a sidecar of each ``--namespace``, read through
``istio-xds-routes``; without it the simulator reads the VirtualServices itself.

Services are ``name`` (in the first ``--namespace``) or ``namespace/name``. Everything given
here can be changed later through the HTTP control API (see ``meshsim.server``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

from meshsim import traffic
from meshsim.server import SimulatorServer
from meshsim.simulator import Simulator

__all__ = ["main", "parse_behaviour", "parse_listen", "parse_service"]

log = logging.getLogger("meshsim")


def parse_listen(value: str) -> tuple[str, int]:
    """``127.0.0.1:9901`` -> ("127.0.0.1", 9901); a bare port listens on 127.0.0.1."""
    host, _, port = value.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--listen needs HOST:PORT, not {value!r}") from None


def parse_service(value: str, *, default_namespace: str) -> tuple[str, str]:
    """``reviews`` or ``bookinfo/reviews`` -> (namespace, service)."""
    namespace, _, service = value.rpartition("/")
    if not service:
        raise argparse.ArgumentTypeError(f"no service name in {value!r}")
    return namespace or default_namespace, service


def parse_behaviour(value: str) -> tuple[str, str, traffic.VersionBehaviour]:
    """``reviews/v2=errorRate=0.1,p50=20,p99=80`` -> ("reviews", "v2", behaviour)."""
    target, _, settings = value.partition("=")
    service, _, version = target.rpartition("/")
    if not service or not version:
        raise argparse.ArgumentTypeError(f"--behaviour needs SERVICE/VERSION=..., not {value!r}")
    fields = dict(item.split("=", 1) for item in settings.split(",") if "=" in item)
    body = {
        "errorRate": float(fields.get("errorRate", 0.0)),
        "latencyMs": {k: float(fields[k]) for k in ("p50", "p99") if k in fields},
    }
    try:
        return service, version, traffic.VersionBehaviour.from_json(body)
    except traffic.SpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="istio-canary-meshsim", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="namespace to simulate (repeat; none: all)",
    )
    parser.add_argument(
        "--listen", type=parse_listen, default=("127.0.0.1", 9901), help="HOST:PORT"
    )
    parser.add_argument("--rps", action="append", default=[], help="SERVICE=RATE of synthetic load")
    parser.add_argument(
        "--mix", action="append", default=[], help="SERVICE=JSON list of request templates"
    )
    parser.add_argument(
        "--behaviour", action="append", default=[], help="SERVICE/VERSION=errorRate=E,p50=MS,p99=MS"
    )
    parser.add_argument(
        "--istiod", metavar="HOST:PORT", help="route by what istiod generates (its plaintext xDS)"
    )
    parser.add_argument(
        "--xds-routes-binary", help="istio-xds-routes (default: .bin/ of this checkout, $PATH)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of every random draw")
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, help="seconds between cluster reads"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def build_simulator(args: argparse.Namespace) -> Simulator:
    import kubernetes  # only the command needs a kubeconfig

    try:
        # kubernetes' config loaders carry no annotations
        api_client = kubernetes.config.new_client_from_config(
            config_file=args.kubeconfig, context=args.context
        )
    except kubernetes.config.ConfigException as error:
        raise ValueError(f"cannot use the kubeconfig: {error}") from error
    default_namespace = args.namespace[0] if args.namespace else "default"
    if args.istiod and not args.namespace:
        raise ValueError("--istiod needs --namespace: a sidecar's routes depend on its namespace")
    sim = Simulator(
        api_client,
        namespaces=args.namespace,
        seed=args.seed,
        poll_interval=args.poll_interval,
        istiod=args.istiod,
        xds_routes_binary=args.xds_routes_binary,
    )
    mixes = {}
    for item in args.mix:
        target, _, body = item.partition("=")
        mixes[parse_service(target, default_namespace=default_namespace)] = json.loads(body)
    for item in args.rps:
        target, _, rate = item.partition("=")
        namespace, service = parse_service(target, default_namespace=default_namespace)
        sim.set_load(
            namespace=namespace,
            service=service,
            rps=float(rate),
            mix=mixes.get((namespace, service), ()),
        )
    for item in args.behaviour:
        target, version, behaviour = parse_behaviour(item)
        namespace, service = parse_service(target, default_namespace=default_namespace)
        sim.set_version_behaviour(
            namespace=namespace,
            service=service,
            version=version,
            error_rate=behaviour.error_rate,
            latency_p50_ms=behaviour.latency_p50_ms,
            latency_p99_ms=behaviour.latency_p99_ms,
        )
    return sim


async def _run(served: SimulatorServer) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await served.start()
    log.info("meshsim serving on %s (metrics at %s/metrics)", served.url, served.url)
    await stopping.wait()
    await served.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        sim = build_simulator(args)
    except (ValueError, traffic.SpecError, argparse.ArgumentTypeError) as error:
        print(f"istio-canary-meshsim: {error}", file=sys.stderr)
        return 2
    asyncio.run(_run(SimulatorServer(sim, listen=args.listen)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
