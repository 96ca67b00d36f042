"""The operator's wheel and image ship only the operator; the development tools ship apart."""

from __future__ import annotations

import ast
import re
import tomllib
import warnings
from pathlib import Path
from typing import Any

from setuptools.config.pyprojecttoml import read_configuration

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"


def packaged(pyproject: Path) -> dict[str, Any]:
    """The project table with ``packages`` as setuptools finds them when it builds the wheel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools calls pyproject.toml support "beta"
        config = read_configuration(pyproject, expand=True)
    return {**config["project"], "packages": sorted(config["tool"]["setuptools"]["packages"])}


def imported_top_level(directory: Path) -> set[str]:
    """Every top-level module the Python files under ``directory`` import."""
    names: set[str] = set()
    for path in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_the_operator_wheel_holds_only_the_istio_canary_package() -> None:
    project = packaged(ROOT / "pyproject.toml")

    assert project["packages"]
    assert all(p == "istio_canary" or p.startswith("istio_canary.") for p in project["packages"])
    assert all(target.startswith("istio_canary.") for target in project["scripts"].values())


def test_the_tools_are_a_project_of_their_own_with_the_meshsim_command() -> None:
    project = packaged(TOOLS / "pyproject.toml")

    assert {p.split(".")[0] for p in project["packages"]} == {"meshsim", "devcluster"}
    assert project["scripts"]["istio-canary-meshsim"] == "meshsim.__main__:main"
    assert project["name"] != packaged(ROOT / "pyproject.toml")["name"]


def test_each_project_declares_the_third_party_packages_its_code_imports() -> None:
    distributions = {
        "kubernetes": "kubernetes",
        "aiohttp": "aiohttp",
        "prometheus_client": "prometheus-client",
    }
    projects = ((TOOLS / "pyproject.toml", TOOLS), (ROOT / "pyproject.toml", ROOT / "operator"))
    for pyproject, code in projects:
        declared = {re.split(r"[<>=!~\[ ]", d)[0] for d in packaged(pyproject)["dependencies"]}
        wanted = {distributions[m] for m in imported_top_level(code) if m in distributions}
        assert wanted <= declared, f"{pyproject}: {sorted(wanted - declared)} used but not declared"
    # aiohttp serves the simulator's HTTP face and the dashboard; the rest of the operator gets
    # it only through kopf.
    outside_dashboard = [
        path for path in (ROOT / "operator").rglob("*.py")
        if "dashboard" not in path.parts and "aiohttp" in path.read_text()
    ]  # fmt: skip
    assert outside_dashboard == []


def test_the_image_build_copies_no_tools() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}

    assert not re.search(r"^COPY\s+tools", dockerfile, flags=re.MULTILINE)
    assert "tools" in ignored


def test_the_development_setup_installs_the_tools_beside_the_operator() -> None:
    setup = (ROOT / "hack" / "setup.sh").read_text()

    assert re.search(r"pip install .*-e \.$", setup, flags=re.MULTILINE)
    assert re.search(r"pip install .*-e tools$", setup, flags=re.MULTILINE)
    with (TOOLS / "pyproject.toml").open("rb") as f:
        assert tomllib.load(f)["build-system"]["build-backend"] == "setuptools.build_meta"
