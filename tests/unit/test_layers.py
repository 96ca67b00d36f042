"""The architecture contracts in ``.importlinter`` hold, and they do catch a broken layer."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
LINT_IMPORTS = pathlib.Path(sys.executable).parent / "lint-imports"
PACKAGES = {
    "istio_canary": REPO / "operator" / "istio_canary",
    "meshsim": REPO / "tools" / "meshsim",
    "devcluster": REPO / "tools" / "devcluster",
}


def lint_imports(*, package_parent: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with our contracts on the packages found in ``package_parent``."""
    search = [package_parent, *{path.parent for path in PACKAGES.values()}]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in search)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / ".importlinter"), "--no-cache", "--no-logo"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_package(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of the operator and the tools, found before the originals, to break on purpose."""
    for name, path in PACKAGES.items():
        shutil.copytree(path, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def add_import(module: pathlib.Path, statement: str) -> None:
    module.write_text(module.read_text() + f"\n{statement}  # added by the test\n")


@pytest.fixture(scope="module", autouse=True)
def _lint_imports_is_installed() -> None:
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: install the dev requirements"


def test_every_import_contract_is_kept() -> None:
    proc = lint_imports(package_parent=REPO / "operator")
    assert proc.returncode == 0, (
        f"lint-imports found broken contracts:\n{proc.stdout}\n{proc.stderr}"
    )
    assert "0 broken" in proc.stdout
    # The tools are checked too, not only the operator.
    assert "meshsim: command -> HTTP server" in proc.stdout
    assert "devcluster: command -> cluster" in proc.stdout


def test_a_pure_module_importing_the_kubernetes_client_breaks_the_contracts(
    tmp_path: pathlib.Path,
) -> None:
    parent = copy_of_package(tmp_path)
    add_import(parent / "istio_canary" / "workloads" / "readiness.py", "import kubernetes")
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "Pure modules import neither kopf" in proc.stdout
    assert "istio_canary.workloads.readiness -> kubernetes" in proc.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_layers(tmp_path: pathlib.Path) -> None:
    parent = copy_of_package(tmp_path)
    add_import(parent / "istio_canary" / "models" / "_base.py", "import istio_canary.workloads")
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "Layers: handlers -> k8s" in proc.stdout and "BROKEN" in proc.stdout


def test_a_new_module_importing_kopf_outside_the_handlers_breaks_the_contracts(
    tmp_path: pathlib.Path,
) -> None:
    parent = copy_of_package(tmp_path)
    (parent / "istio_canary" / "newcomer.py").write_text("import kopf\n")
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "istio_canary.newcomer -> kopf" in proc.stdout


def test_a_decision_importing_an_io_adapter_breaks_the_layers(tmp_path: pathlib.Path) -> None:
    parent = copy_of_package(tmp_path)
    add_import(
        parent / "istio_canary" / "phases" / "schedule.py", "import istio_canary.analysis.prometheus"
    )
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "istio_canary.phases.schedule -> istio_canary.analysis.prometheus" in proc.stdout


def test_an_io_adapter_importing_the_loop_breaks_the_layers(tmp_path: pathlib.Path) -> None:
    parent = copy_of_package(tmp_path)
    add_import(parent / "istio_canary" / "analysis" / "egress.py", "import istio_canary.reconcile")
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "istio_canary.analysis.egress -> istio_canary.reconcile" in proc.stdout


def test_deleting_a_layer_module_breaks_the_layers(tmp_path: pathlib.Path) -> None:
    parent = copy_of_package(tmp_path)
    (parent / "istio_canary" / "health.py").unlink()
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "Missing layer 'istio_canary.health'" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("module", "statement", "edge"),
    [
        ("istio/routes.py", "import aiohttp", "istio_canary.istio.routes -> aiohttp"),
        (
            "workloads/patch.py",
            "import prometheus_client",
            "istio_canary.workloads.patch -> prometheus_client",
        ),
        (
            "analysis/judge.py",
            "from istio_canary import metrics",
            "istio_canary.analysis.judge -> istio_canary.metrics",
        ),
        ("actions.py", "import requests", "istio_canary.actions -> requests"),
    ],
)
def test_a_pure_module_importing_http_prometheus_or_the_operator_metrics_breaks_the_contracts(
    tmp_path: pathlib.Path, module: str, statement: str, edge: str
) -> None:
    parent = copy_of_package(tmp_path)
    add_import(parent / "istio_canary" / module, statement)
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "Pure modules import neither kopf" in proc.stdout and edge in proc.stdout


def test_a_new_module_speaking_http_outside_the_egress_adapter_breaks_the_contracts(
    tmp_path: pathlib.Path,
) -> None:
    parent = copy_of_package(tmp_path)
    (parent / "istio_canary" / "newcomer.py").write_text("import requests\n")
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "Only the egress adapter speaks HTTP" in proc.stdout
    assert "istio_canary.newcomer -> requests" in proc.stdout


def test_routing_builders_importing_workload_builders_breaks_their_independence(
    tmp_path: pathlib.Path,
) -> None:
    parent = copy_of_package(tmp_path)
    add_import(parent / "istio_canary" / "istio" / "plan.py", "import istio_canary.workloads")
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "builders do not know each other BROKEN" in proc.stdout.replace("\n", " ")


def test_the_operator_importing_a_development_tool_breaks_the_contracts(
    tmp_path: pathlib.Path,
) -> None:
    parent = copy_of_package(tmp_path)
    add_import(parent / "istio_canary" / "cli.py", "import meshsim.traffic")
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "istio_canary.cli -> meshsim.traffic" in proc.stdout


def test_the_simulator_importing_its_http_server_breaks_the_meshsim_layers(
    tmp_path: pathlib.Path,
) -> None:
    parent = copy_of_package(tmp_path)
    add_import(parent / "meshsim" / "simulator.py", "from meshsim import server")
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "meshsim.simulator -> meshsim.server" in proc.stdout


def test_the_pure_routing_of_meshsim_speaking_http_breaks_the_contracts(
    tmp_path: pathlib.Path,
) -> None:
    parent = copy_of_package(tmp_path)
    add_import(parent / "meshsim" / "routing.py", "import aiohttp")
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "meshsim: only the server speaks HTTP BROKEN" in proc.stdout.replace("\n", " ")


@pytest.mark.parametrize("package", ["meshsim", "devcluster"])
def test_a_tool_module_without_a_place_in_its_layers_breaks_the_contracts(
    tmp_path: pathlib.Path, package: str
) -> None:
    parent = copy_of_package(tmp_path)
    (parent / package / "newcomer.py").write_text('"""Not placed in .importlinter yet."""\n')
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert f"- {package}.newcomer" in proc.stdout


def test_the_local_cluster_importing_the_simulator_breaks_the_contracts(
    tmp_path: pathlib.Path,
) -> None:
    parent = copy_of_package(tmp_path)
    add_import(parent / "devcluster" / "prometheus.py", "import meshsim.mesh")
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "devcluster.prometheus -> meshsim.mesh" in proc.stdout
