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
PACKAGE = REPO / "operator" / "istio_canary"


def lint_imports(*, package_parent: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with our contracts on the package found in ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
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
    shutil.copytree(
        PACKAGE, tmp_path / "istio_canary", ignore=shutil.ignore_patterns("__pycache__")
    )
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
