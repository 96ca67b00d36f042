#!/usr/bin/env bash
# Builds the local control plane into .bin/ from the official Go modules (no binary downloads).
# Idempotent: a stamp file records the pinned versions; when it matches, nothing is rebuilt.
# Cold: about 20-30 minutes on 2 cores, ~2 GB of modules and ~4 GB of Go build cache.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=v1.34.4
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.19.0
ISTIO_API_VERSION=v1.27.3
BIN=.bin
STAMP="$BIN/.versions"
WANT="kubernetes=$K8S_VERSION kwok=$KWOK_VERSION helm=$HELM_VERSION istio-api=$ISTIO_API_VERSION"

export CGO_ENABLED=0
export GOFLAGS=-mod=mod

mkdir -p "$BIN"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl helm; do
    [[ -x "$BIN/$b" ]] || { rm -f "$STAMP"; break; }
  done
  if [[ -f "$STAMP" ]]; then
    echo "control plane: up to date ($WANT)"
    exit 0
  fi
fi

echo "control plane: building $WANT into $BIN/"
echo "  a cold build takes 20-30 minutes on 2 cores and needs ~6 GB of disk and ~3 GB of memory"
start=$(date +%s)

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean"

(
  cd hack/controlplane
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    echo "  building $cmd"
    go build -trimpath -ldflags "$ldflags" -o "../../$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
  echo "  building etcd and kubectl"
  go build -trimpath -ldflags "$ldflags" -o "../../$BIN/etcd" ./cmd/etcd
  go build -trimpath -ldflags "$ldflags" -o "../../$BIN/kubectl" ./cmd/kubectl
)

echo "  building kwok, kwokctl $KWOK_VERSION and helm $HELM_VERSION"
GOBIN="$PWD/$BIN" go install -trimpath -ldflags "-s -w" \
  "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
GOBIN="$PWD/$BIN" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

echo "  fetching Istio's CRDs from istio.io/api@$ISTIO_API_VERSION"
# Outside any module, so that nothing in the repo's go.mod or go.sum changes.
dir=$(cd "$(mktemp -d)" && GOFLAGS= go mod download -json "istio.io/api@$ISTIO_API_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
cp "$dir/kubernetes/customresourcedefinitions.gen.yaml" "$BIN/istio-crds.yaml"

echo "$WANT" > "$STAMP"
echo "control plane: built in $(( $(date +%s) - start )) s"
