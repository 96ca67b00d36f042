#!/usr/bin/env bash
# Builds the local control plane into .bin/ from the official Go modules (no binary downloads):
# Kubernetes, kwok and helm, then Istio's istiod (pilot-discovery) with the CRDs of the same commit
# and our xDS client istio-xds-routes (hack/xdsdump, a module pinned to the same istio.io/istio),
# and istio-kstatus (hack/kstatus: kstatus' verdict on an object, for the GitOps e2e tests).
# Idempotent: stamp files record the pinned versions; when they match, nothing is rebuilt.
# Cold: about 15-25 minutes on 2 cores for Kubernetes, 10-15 more for istiod; ~3 GB of modules
# and ~5 GB of Go build cache.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=v1.34.4
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.19.0
# Istio: no tagged istio.io/istio version is served by the Go module proxy (Istio's tags have no
# "v"), so this is a pseudo-version of the 1.31 development line. Its pilot-discovery and its
# CRDs (manifests/charts/base/files/crd-all.gen.yaml) come from this one pin.
ISTIO_VERSION=v0.0.0-20260827124520-eed52ebb66ad
ISTIO_BUILD_VERSION=1.31-dev-eed52ebb
BIN=.bin
STAMP="$BIN/.versions"
WANT="kubernetes=$K8S_VERSION kwok=$KWOK_VERSION helm=$HELM_VERSION"
ISTIO_STAMP="$BIN/.istio-version"
XDS_STAMP="$BIN/.istio-xds-routes"
KSTATUS_STAMP="$BIN/.istio-kstatus"

export CGO_ENABLED=0
export GOFLAGS=-mod=mod

# istio-xds-routes: asks istiod what it would push to a sidecar (the mesh simulator routes by
# that). Its module requires istio.io/istio at $ISTIO_VERSION, so with pilot-discovery's flags
# (CGO_ENABLED=0, -trimpath) it reuses that build's cache: about 20 s warm. Rebuilt when the
# pin or its sources change (the stamp holds a hash of both).
build_xds_routes() {
  local want start
  grep -q "istio.io/istio $ISTIO_VERSION\$" hack/xdsdump/go.mod \
    || { echo "hack/xdsdump/go.mod does not require istio.io/istio $ISTIO_VERSION" >&2; exit 1; }
  want="$ISTIO_VERSION $(cat hack/xdsdump/go.mod hack/xdsdump/go.sum hack/xdsdump/*.go | sha256sum | cut -c1-16)"
  if [[ -x "$BIN/istio-xds-routes" && -f "$XDS_STAMP" && "$(cat "$XDS_STAMP")" == "$want" ]]; then
    echo "istio-xds-routes: up to date"
    return
  fi
  echo "istio-xds-routes: building hack/xdsdump against istio.io/istio@$ISTIO_VERSION"
  start=$(date +%s)
  (cd hack/xdsdump && GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath \
    -ldflags "-s -w -X istio.io/istio/pkg/version.buildVersion=$ISTIO_BUILD_VERSION" \
    -o "../../$BIN/istio-xds-routes" .)
  echo "$want" > "$XDS_STAMP"
  echo "istio-xds-routes: built in $(( $(date +%s) - start )) s"
}

# istio-kstatus: what kstatus (sigs.k8s.io/cli-utils, the library behind Flux's health checks)
# computes for an object piped to it as JSON; the e2e tests check each phase of a release with
# it. Its module pins k8s.io/* at the control plane's v0.34 minor, so it reuses those modules.
# Rebuilt when its sources change (the stamp holds their hash).
build_kstatus() {
  local want start
  want="$(cat hack/kstatus/go.mod hack/kstatus/go.sum hack/kstatus/*.go | sha256sum | cut -c1-16)"
  if [[ -x "$BIN/istio-kstatus" && -f "$KSTATUS_STAMP" && "$(cat "$KSTATUS_STAMP")" == "$want" ]]; then
    echo "istio-kstatus: up to date"
    return
  fi
  echo "istio-kstatus: building hack/kstatus"
  start=$(date +%s)
  (cd hack/kstatus && GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "-s -w" \
    -o "../../$BIN/istio-kstatus" .)
  echo "$want" > "$KSTATUS_STAMP"
  echo "istio-kstatus: built in $(( $(date +%s) - start )) s"
}

# Istio's own Bookinfo manifests, read unchanged by the e2e tests of releases over versions
# that are already deployed (samples/bookinfo in the same module as istiod).
copy_istio_samples() {
  local dir=$1
  rm -rf "$BIN/istio-samples" && mkdir -p "$BIN/istio-samples"
  cp -r "$dir/samples/bookinfo/platform/kube" "$dir/samples/bookinfo/networking" "$BIN/istio-samples/"
  chmod -R u+w "$BIN/istio-samples"
}

istio_module_dir() {
  (cd "$(mktemp -d)" && GOFLAGS= go mod download -json "istio.io/istio@$ISTIO_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
}

build_istio() {
  if [[ -x "$BIN/pilot-discovery" && -f "$BIN/istio-crds.yaml" && -f "$ISTIO_STAMP" \
        && "$(cat "$ISTIO_STAMP")" == "$ISTIO_VERSION" ]]; then
    echo "istiod: up to date (istio.io/istio@$ISTIO_VERSION)"
    [[ -f "$BIN/istio-samples/kube/bookinfo.yaml" ]] || copy_istio_samples "$(istio_module_dir)"
    build_xds_routes
    return
  fi
  echo "istiod: building pilot-discovery from istio.io/istio@$ISTIO_VERSION (Istio $ISTIO_BUILD_VERSION)"
  echo "  a cold build takes 10-15 minutes on 2 cores"
  local start dir
  start=$(date +%s)
  # Outside any module: istiod needs newer client-go than the control plane's module pins.
  (cd "$(mktemp -d)" && GOFLAGS= GOBIN="$OLDPWD/$BIN" go install -trimpath \
    -ldflags "-s -w -X istio.io/istio/pkg/version.buildVersion=$ISTIO_BUILD_VERSION" \
    "istio.io/istio/pilot/cmd/pilot-discovery@$ISTIO_VERSION")
  dir=$(istio_module_dir)
  cp "$dir/manifests/charts/base/files/crd-all.gen.yaml" "$BIN/istio-crds.yaml"
  rm -rf "$BIN/istio-base-chart" && cp -r "$dir/manifests/charts/base" "$BIN/istio-base-chart"
  chmod -R u+w "$BIN/istio-base-chart"
  copy_istio_samples "$dir"
  echo "$ISTIO_VERSION" > "$ISTIO_STAMP"
  echo "istiod: built in $(( $(date +%s) - start )) s"
  build_xds_routes
}

mkdir -p "$BIN"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl helm; do
    [[ -x "$BIN/$b" ]] || { rm -f "$STAMP"; break; }
  done
  if [[ -f "$STAMP" ]]; then
    echo "control plane: up to date ($WANT)"
    build_istio
    build_kstatus
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

echo "$WANT" > "$STAMP"
echo "control plane: built in $(( $(date +%s) - start )) s"
build_istio
build_kstatus
