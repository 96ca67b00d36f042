"""The command line and the thin I/O part: the only code here that reads the kubeconfig and
calls the API server."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, RenderableType

from istio_canary.models import GROUP, PLURAL, VERSION
from istio_canary.plugin.patches import (
    Body,
    Patch,
    PluginError,
    abort_patch,
    approve_patch,
    describe_patch,
    offline_patch,
    pause_patch,
    resume_patch,
    set_weight_patch,
    take_over_patch,
)
from istio_canary.plugin.views import render_releases, render_status

__all__ = ["Target", "build_parser", "main", "patch_for"]

WATCH_INTERVAL_SECONDS = 2.0


@dataclass(frozen=True)
class Target:
    """Where the plugin talks to: from the flags, defaults from the kubeconfig."""

    kubeconfig: str | None
    context: str | None
    namespace: str | None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl canary",
        description="Look at and steer CanaryReleases (every verb patches the spec).",
    )
    _add_target_flags(parser, default=None)
    # The same flags after the verb (`kubectl canary status reviews -n bookinfo`), as kubectl
    # users type them; SUPPRESS keeps a flag given before the verb from being reset.
    target = argparse.ArgumentParser(add_help=False)
    _add_target_flags(target, default=argparse.SUPPRESS)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, text: str) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=text, parents=[target])

    get = verb("get", "list releases with phase and weights")
    get.add_argument("-A", "--all-namespaces", action="store_true")
    status = verb("status", "phase, weights, traffic health and events of one release")
    status.add_argument("name")
    status.add_argument("-w", "--watch", action="store_true", help="refresh until interrupted")
    set_weight = verb("set-weight", "percent of requests to the canary")
    set_weight.add_argument("name")
    set_weight.add_argument("weight", type=int)
    take_over = verb("take-over", "send 100%% of traffic to VERSION")
    take_over.add_argument("name")
    take_over.add_argument("version")
    for name, text in (
        ("offline", "remove the version that was not taken over; the release completes"),
        ("abort", "send everything back to stable and remove the canary"),
        ("approve", "approve the gate the release waits at (analysis.approvals), for the canary that runs now"),
        ("pause", "leave routing as it is (policy Paused)"),
        ("resume", "route again (policy WaitForWorkloadReady)"),
    ):
        verb(name, text).add_argument("name")
    return parser


def _add_target_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "-n", "--namespace", default=default, help="namespace (default: the context's)"
    )
    parser.add_argument("--kubeconfig", default=default, help="path of the kubeconfig file")
    parser.add_argument("--context", default=default, help="kubeconfig context to use")


def patch_for(args: argparse.Namespace, current: Callable[[], Body]) -> Patch:
    """The patch a verb asks for; ``current`` reads the release when validation needs it."""
    builders: dict[str, Callable[[], Patch]] = {
        "set-weight": lambda: set_weight_patch(args.weight),
        "take-over": lambda: take_over_patch(current(), args.version),
        "offline": lambda: offline_patch(current()),
        "abort": abort_patch,
        "approve": lambda: approve_patch(current()),
        "pause": pause_patch,
        "resume": resume_patch,
    }
    return builders[args.verb]()


# --- I/O: the only part that touches the kubeconfig and the API server.


class _Cluster:
    def __init__(self, target: Target) -> None:
        # Imported here so the pure part (and its tests) never loads the Kubernetes client.
        from kubernetes import client, config

        # The kubernetes.config module has no type hints.
        config.load_kube_config(
            config_file=target.kubeconfig, context=target.context
        )
        contexts, active = config.list_kube_config_contexts(
            config_file=target.kubeconfig
        )
        if target.context:
            active = next((c for c in contexts if c["name"] == target.context), active)
        self.namespace = (
            target.namespace or (active or {}).get("context", {}).get("namespace") or "default"
        )
        self.api = client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    def get(self, name: str) -> Body:
        return _call_for_object(
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        )

    def list_releases(self, *, all_namespaces: bool) -> list[Body]:
        if all_namespaces:
            found = _call(lambda: self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL))
        else:
            found = _call(
                lambda: self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL
                )
            )
        return list(found.get("items", []))

    def patch(self, name: str, patch: Patch) -> Body:
        return _call_for_object(
            lambda: self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                patch,
                _content_type="application/merge-patch+json",
                field_manager="kubectl-canary",  # the person's verb, apart from Git's and the operator's fields
            )
        )

    def events(self, release: Body) -> list[Body]:
        selector = f"involvedObject.uid={release['metadata'].get('uid', '')}"
        found = _call(
            lambda: self.core.list_namespaced_event(self.namespace, field_selector=selector)
        )
        # Typed client objects to the same camelCase dicts the views read everywhere else.
        as_dict = self.api.sanitize_for_serialization(found)
        return list(as_dict.get("items", []))


def _call(request: Callable[[], Any]) -> Any:
    """Run one API request; an API error becomes a PluginError carrying the server's message."""
    from kubernetes.client.exceptions import ApiException

    try:
        return request()
    except ApiException as error:
        raise PluginError(_api_message(error.status, error.body, error.reason)) from None


def _call_for_object(request: Callable[[], Any]) -> Body:
    found = _call(request)
    if not isinstance(found, Mapping):
        raise PluginError(f"unexpected answer from the API server: {type(found).__name__}")
    return found


def _api_message(status: int | None, body: str | bytes | None, reason: str | None) -> str:
    """The message of a Kubernetes ``Status`` answer (for a 422 it lists the rejected fields)."""
    try:
        message = json.loads(body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{message or reason or 'request failed'} (HTTP {status})"


def _run(args: argparse.Namespace, console: Console) -> None:
    cluster = _Cluster(
        Target(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace)
    )
    if args.verb == "get":
        releases = cluster.list_releases(all_namespaces=args.all_namespaces)
        if not releases:
            where = "any namespace" if args.all_namespaces else f"namespace {cluster.namespace}"
            print(f"No CanaryReleases found in {where}.")
            return
        console.print(
            render_releases(releases, now=datetime.now(UTC), all_namespaces=args.all_namespaces)
        )
        return
    if args.verb == "status":
        _show_status(cluster, args.name, watch=args.watch, console=console)
        return
    patch = patch_for(args, lambda: cluster.get(args.name))
    cluster.patch(args.name, patch)
    # Plain print: one line that never wraps, and no rich markup read into the text.
    print(f"canaryrelease.{GROUP}/{args.name} patched ({describe_patch(patch)})")


def _show_status(cluster: _Cluster, name: str, *, watch: bool, console: Console) -> None:
    def view() -> RenderableType:
        release = cluster.get(name)
        return render_status(release, cluster.events(release), now=datetime.now(UTC))

    if not watch:
        console.print(view())
        return
    from rich.live import Live

    # Polling, not a watch stream: two small GETs every two seconds are cheap, and a
    # dropped connection cannot freeze the view.
    with Live(view(), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(WATCH_INTERVAL_SECONDS)
                live.update(view(), refresh=True)
        except KeyboardInterrupt:
            pass


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _run(args, Console())
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    # Kubeconfig and connection problems come as many exception types; a person at a
    # terminal wants one line, not a traceback.
    except Exception as error:  # noqa: BLE001
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
