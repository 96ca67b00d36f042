"""``python -m devcluster up|down|status|build``: what ``make cluster-up`` and friends run."""

from __future__ import annotations

import argparse
import sys

from devcluster.cluster import Cluster, ClusterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devcluster", description=__doc__)
    parser.add_argument("command", choices=["build", "up", "down", "status"])
    parser.add_argument("--name", default="istio-canary")
    args = parser.parse_args(argv)
    cluster = Cluster(name=args.name)
    try:
        if args.command == "build":
            cluster.build()
        elif args.command == "up":
            cluster.build()
            cluster.up()
            print(f"cluster {args.name} is up; kubeconfig: {cluster.kubeconfig}")
        elif args.command == "down":
            cluster.down()
            print(f"cluster {args.name} removed")
        else:
            up = cluster.is_up()
            print(f"cluster {args.name}: {'up' if up else 'down'}")
            return 0 if up else 1
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
