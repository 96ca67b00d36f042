# The operator image: `docker build -t istio-canary-operator .`
# Three stages: the first installs the dashboard's JavaScript libraries from npm as
# package-lock.json pins them; the second builds wheels (the package, with those libraries, and
# its pinned dependencies); the last installs only those wheels, offline, into a clean base, so
# no build tool reaches the image.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG NODE_IMAGE=node:20.19.5-bookworm-slim

FROM ${NODE_IMAGE} AS web
WORKDIR /src/operator/istio_canary/dashboard/web
COPY operator/istio_canary/dashboard/web/package.json operator/istio_canary/dashboard/web/package-lock.json operator/istio_canary/dashboard/web/build.sh ./
RUN bash build.sh

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY requirements.lock pyproject.toml README.md ./
COPY operator/ operator/
COPY --from=web /src/operator/istio_canary/dashboard/static/vendor/ operator/istio_canary/dashboard/static/vendor/
# --no-deps for the package itself: its dependencies come from requirements.lock, pinned.
RUN pip wheel --wheel-dir /wheels --no-deps . \
 && pip wheel --wheel-dir /wheels -r requirements.lock

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="istio-canary-operator" \
      org.opencontainers.image.description="Canary releases on an Istio service mesh" \
      org.opencontainers.image.licenses="Apache-2.0"
# MALLOC_ARENA_MAX: glibc keeps one arena per thread that decoded a large API response; two
# arenas cut the resident memory of 150 releases from 288 to 194 MB (docs/performance.md).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MALLOC_ARENA_MAX=2
# A fixed uid/gid that the Helm chart's securityContext names (runAsUser: 10001).
RUN groupadd --system --gid 10001 operator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin operator
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
# --no-index: only the wheels built above, exactly the versions requirements.lock pins.
RUN pip install --no-index --find-links /wheels -r /tmp/requirements.lock \
 && pip install --no-index --no-deps /wheels/istio_canary_operator-*.whl \
 && rm -rf /wheels /tmp/requirements.lock
USER 10001:10001
# 8080: kopf's /healthz (liveness), 9090: the operator's /metrics, 8443: the dashboard
# (`istio-canary-operator dashboard`, its own Deployment in the chart).
EXPOSE 8080 8443 9090
ENTRYPOINT ["istio-canary-operator", "run"]
