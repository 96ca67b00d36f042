#!/usr/bin/env bash
# Everything a fresh machine needs before tests or the demo: Debian packages, the virtual
# environment at .venv with pinned dependencies, and the Go-built control plane in .bin/.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v go >/dev/null || need_apt+=(golang-go)
# The dashboard: npm builds its front end; Chromium and its driver run its browser tests.
command -v npm >/dev/null || need_apt+=(npm)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if (( ${#need_apt[@]} )); then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
want=$(cat requirements.lock requirements-dev.lock pyproject.toml tools/pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat $stamp)" != "$want" ]]; then
  echo "setup: installing Python dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.lock -r requirements-dev.lock
  .venv/bin/pip install -q --no-deps -e .
  # The mesh simulator and the local control plane: development tools, not in the operator's wheel.
  .venv/bin/pip install -q --no-deps -e tools
  echo "$want" > $stamp
fi

bash operator/istio_canary/dashboard/web/build.sh
bash hack/build-controlplane.sh
