# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST_ARGS ?=
CLUSTER ?= local

.PHONY: setup test unit e2e lint demo run dashboard cluster-up cluster-down crds bench reliability clean

setup:
	@bash hack/setup.sh

## The whole suite: unit tests (fast, first) then e2e tests on the local control plane.
test: setup
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

e2e: setup
	$(PY) -m pytest -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

## The reliability campaigns at their full counts (the default suite runs a tenth of each); see docs/reliability.md.
reliability: setup
	ICO_RELIABILITY_LONG=1 $(PY) -m pytest -p no:cacheprovider tests/e2e -m reliability -s $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check operator tools tests examples bench
	.venv/bin/mypy
	.venv/bin/mypy examples/bookinfo bench
	.venv/bin/mypy tests
	.venv/bin/lint-imports --no-cache

## The Bookinfo canary demo on the local control plane (CLUSTER=current: the current kubeconfig's cluster).
demo: setup
	$(PY) examples/bookinfo/demo.py --cluster $(CLUSTER)

cluster-up: setup
	$(PY) -m devcluster up

cluster-down:
	$(PY) -m devcluster down

## The operator against the local cluster, all namespaces.
run: setup
	KUBECONFIG=.cluster/kubeconfig .venv/bin/istio-canary-operator run --all-namespaces

## The web dashboard against the local cluster, on loopback (plain HTTP, so no Secure cookie).
dashboard: setup
	KUBECONFIG=.cluster/kubeconfig .venv/bin/istio-canary-operator dashboard --insecure-cookies

## Regenerate everything derived from the models: the CRD, the chart's copy, the field reference.
crds: setup
	$(PY) -m istio_canary.models.crd > crds/releases.istio-canary.io_canaryreleases.yaml
	cp crds/releases.istio-canary.io_canaryreleases.yaml charts/istio-canary-operator/crds/
	$(PY) -m istio_canary.models.reference > docs/reference.md

bench: setup
	$(PY) bench/blast_radius.py

clean: cluster-down
	rm -rf .cluster
