"""The simulator routes by istiod's pushes when given istiod, and reads them through istio-xds-routes.

``istio-xds-routes`` is played here by a small script that prints captured lines, so these
tests need neither istiod nor the Go build.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from meshsim import routers, xds
from meshsim.__main__ import main
from meshsim.envoy_routes import parse_config
from meshsim.simulator import Simulator

from tests.unit.test_meshsim_envoy_routes import BOOKINFO, FIXTURES

LINE = json.dumps(json.loads((FIXTURES / "bookinfo-missing-subsets.json").read_text()))


def fake_binary(tmp_path: Path, *lines: str, then_sleep: bool = True) -> str:
    """A stand-in for istio-xds-routes: prints ``lines`` (once: the first) and, unless --once, waits."""
    (tmp_path / "lines.jsonl").write_text("".join(line + "\n" for line in lines))
    script = tmp_path / "istio-xds-routes"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import sys, time
            lines = open({str(tmp_path / "lines.jsonl")!r}).read().splitlines()
            with open({str(tmp_path / "argv")!r}, "a") as seen:
                seen.write(" ".join(sys.argv[1:]) + "\\n")
            once = "--once" in sys.argv
            for line in lines[:1] if once else lines:
                print(line, flush=True)
                time.sleep(0.05)
            if not once and {then_sleep!r}:
                time.sleep(60)
            """
        )
    )
    script.chmod(0o755)
    return str(script)


def test_fetch_config_asks_as_a_sidecar_of_the_namespace_and_parses_one_snapshot(
    tmp_path: Path,
) -> None:
    binary = fake_binary(tmp_path, LINE)
    config = xds.fetch_config(xds_address="127.0.0.1:15010", namespace="bookinfo", binary=binary)
    assert sorted(config.route_configs) == ["9080"]
    argv = (tmp_path / "argv").read_text()
    assert "--xds 127.0.0.1:15010 --namespace bookinfo" in argv and "--once" in argv


def test_a_failing_xds_client_is_an_error_with_its_message(tmp_path: Path) -> None:
    script = tmp_path / "fails"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.exit('connection refused')\n")
    script.chmod(0o755)
    with pytest.raises(xds.XdsError, match="connection refused"):
        xds.fetch_config(xds_address="127.0.0.1:1", namespace="bookinfo", binary=str(script))


def test_the_binary_is_taken_from_the_environment_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISTIO_XDS_ROUTES", "/opt/istio-xds-routes")
    assert xds.find_binary() == "/opt/istio-xds-routes"
    assert xds.find_binary("/given") == "/given"


def test_a_watch_keeps_the_latest_push_and_counts_them(tmp_path: Path) -> None:
    second = json.loads(LINE)
    second["versions"]["routes"] = "second"
    binary = fake_binary(tmp_path, LINE, json.dumps(second))
    pushed: list[str] = []
    watch = xds.XdsWatch(
        xds_address="127.0.0.1:15010",
        namespace="bookinfo",
        binary=binary,
        on_push=lambda ns, config: pushed.append(f"{ns}:{config.versions['routes']}"),
    )
    watch.start()
    try:
        latest = watch.wait_for_push(after=1, timeout=10)
    finally:
        watch.stop()
    assert latest.versions["routes"] == "second"
    assert watch.pushes == 2 and pushed[-1] == "bookinfo:second"


def test_a_watch_restarts_the_client_when_it_exits(tmp_path: Path) -> None:
    binary = fake_binary(tmp_path, LINE, then_sleep=False)
    watch = xds.XdsWatch(xds_address="127.0.0.1:15010", namespace="bookinfo", binary=binary)
    watch.start()
    try:
        watch.wait_for_push(after=1, timeout=10)  # a second push only comes from a restart
    finally:
        watch.stop()
    assert len((tmp_path / "argv").read_text().splitlines()) >= 2


def test_a_simulator_given_istiod_routes_by_its_pushes_and_says_so(tmp_path: Path) -> None:
    binary = fake_binary(tmp_path, LINE)
    sim = Simulator(
        snapshot_source=lambda: BOOKINFO,
        namespaces=["bookinfo"],
        seed=1,
        istiod="127.0.0.1:15010",
        xds_routes_binary=binary,
    )
    with sim:
        assert sim.describe()["routingSource"] == "istiod"
        assert sim.describe()["envoy"]["bookinfo"]["routeConfigurations"] == ["9080"]
        # Routes only istiod's output has: no VirtualService is in the snapshot at all.
        assert not sim.snapshot.virtual_services
        missing = sim.request(host="reviews", namespace="bookinfo", headers={"x-v3": "yes"})
        assert (missing.code, missing.flags) == (503, "NC")
        assert sim.request(host="reviews", namespace="bookinfo").version == "v1"


def test_an_envoy_router_with_a_fixed_configuration_serves_the_simulator() -> None:
    config = parse_config(json.loads(LINE))
    sim = Simulator(snapshot_source=lambda: BOOKINFO, router=routers.EnvoyRouter({"bookinfo": config}))
    sim.refresh()
    outcome = sim.request(host="reviews", namespace="bookinfo", headers={"x-v2": "1"})
    assert (outcome.code, outcome.flags) == (503, "UH")
    assert sim.request(host="reviews", namespace="other").flags == "NR"  # no sidecar config there


def test_routing_by_istiod_needs_the_client_namespaces() -> None:
    with pytest.raises(ValueError, match="namespaces"):
        routers.IstiodRouter(xds_address="127.0.0.1:15010", namespaces=[], binary="/bin/true")


def test_the_command_refuses_istiod_without_a_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = Path(os.devnull)
    assert main(["--kubeconfig", str(kubeconfig), "--istiod", "127.0.0.1:15010"]) == 2
    assert "istio-canary-meshsim:" in capsys.readouterr().err


def test_a_watch_that_gets_no_push_says_why(tmp_path: Path) -> None:
    binary = fake_binary(tmp_path)  # prints nothing
    watch = xds.XdsWatch(xds_address="127.0.0.1:15010", namespace="bookinfo", binary=binary)
    watch.start()
    started = time.monotonic()
    try:
        with pytest.raises(xds.XdsError, match="no push from istiod for bookinfo"):
            watch.wait_for_push(timeout=0.5)
    finally:
        watch.stop()
    assert time.monotonic() - started < 15
