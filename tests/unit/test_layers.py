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
    """Append ``statement`` to ``module``, creating the module when it is new."""
    before = module.read_text() if module.exists() else '"""Added by the test."""\n'
    module.write_text(before + f"\n{statement}  # added by the test\n")


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


def test_deleting_a_layer_module_breaks_the_layers(tmp_path: pathlib.Path) -> None:
    parent = copy_of_package(tmp_path)
    (parent / "istio_canary" / "health.py").unlink()
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    assert "Missing layer 'istio_canary.health'" in proc.stdout + proc.stderr


PURE = "Pure modules import neither kopf"

# (module, the import added to it, what lint-imports must say): one row per kind of contract.
BROKEN = [
    pytest.param(
        "istio_canary/phases/schedule.py", "import istio_canary.analysis.prometheus",
        ("istio_canary.phases.schedule -> istio_canary.analysis.prometheus",), id="decision-imports-adapter",
    ),
    pytest.param(
        "istio_canary/analysis/egress.py", "import istio_canary.reconcile",
        ("istio_canary.analysis.egress -> istio_canary.reconcile",), id="adapter-imports-loop",
    ),
    pytest.param(
        "istio_canary/istio/routes.py", "import aiohttp", (PURE, "istio_canary.istio.routes -> aiohttp"), id="aiohttp",
    ),
    pytest.param(
        "istio_canary/workloads/patch.py", "import prometheus_client",
        (PURE, "istio_canary.workloads.patch -> prometheus_client"), id="prometheus-client",
    ),
    pytest.param(
        "istio_canary/analysis/judge.py", "from istio_canary import metrics",
        (PURE, "istio_canary.analysis.judge -> istio_canary.metrics"), id="operator-metrics",
    ),
    pytest.param(
        "istio_canary/actions.py", "import requests", (PURE, "istio_canary.actions -> requests"), id="requests",
    ),
    pytest.param(
        "istio_canary/newcomer.py", "import requests",
        ("Only the egress adapter speaks HTTP", "istio_canary.newcomer -> requests"), id="new-module-speaks-http",
    ),
    pytest.param(
        "istio_canary/istio/plan.py", "import istio_canary.workloads",
        ("builders do not know each other BROKEN",), id="builders-know-each-other",
    ),
    pytest.param(
        "istio_canary/cli.py", "import meshsim.traffic", ("istio_canary.cli -> meshsim.traffic",),
        id="operator-imports-tool",
    ),
    pytest.param(
        "meshsim/simulator.py", "from meshsim import server", ("meshsim.simulator -> meshsim.server",),
        id="simulator-imports-its-http-server",
    ),
    pytest.param(
        "meshsim/routing.py", "import aiohttp", ("meshsim: only the server speaks HTTP BROKEN",),
        id="routing-speaks-http",
    ),
    pytest.param("meshsim/newcomer.py", "import json", ("- meshsim.newcomer",), id="meshsim-module-without-a-layer"),
    pytest.param(
        "devcluster/newcomer.py", "import json", ("- devcluster.newcomer",), id="devcluster-module-without-a-layer",
    ),
    pytest.param(
        "devcluster/prometheus.py", "import meshsim.mesh", ("devcluster.prometheus -> meshsim.mesh",),
        id="cluster-imports-simulator",
    ),
]


@pytest.mark.parametrize(("module", "statement", "said"), BROKEN)
def test_an_import_against_the_architecture_breaks_a_contract_and_lint_imports_says_which(
    tmp_path: pathlib.Path, module: str, statement: str, said: tuple[str, ...]
) -> None:
    parent = copy_of_package(tmp_path)
    add_import(parent / module, statement)
    proc = lint_imports(package_parent=parent)
    assert proc.returncode != 0, proc.stdout
    report = " ".join(proc.stdout.split())  # lint-imports wraps long contract names
    assert all(phrase in report for phrase in said), proc.stdout
