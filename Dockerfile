# syntax=docker/dockerfile:1
# replicator's container image: the daemon (`replicator run`) and every other
# command. Build: docker build -t replicator:0.1.0 .
#
# The base image is pinned by digest so a rebuild gets the same bytes; update the
# digest deliberately (docker buildx imagetools inspect python:3.11-slim-bookworm).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# Stage 1: build the wheel and install it, with its dependencies, into a virtualenv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY replicator ./replicator
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/replicator \
    && python -m pip --python /opt/replicator/bin/python install --no-cache-dir \
        --no-compile /wheels/replicator-*.whl

# Stage 2: the runtime: Python, the virtualenv, a non-root user; no pip, no
# compiler, no source tree.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="replicator" \
      org.opencontainers.image.description="Replicate container images between registries" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN python -m pip uninstall --yes pip setuptools wheel \
    && groupadd --system --gid 10001 replicator \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin replicator
COPY --from=build /opt/replicator /opt/replicator
ENV PATH=/opt/replicator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric user lets Kubernetes check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
# No HEALTHCHECK: the image also runs one-shot commands (backfill, verify, copy),
# and Kubernetes probes /healthz and /readyz itself (deploy/kubernetes/).
ENTRYPOINT ["replicator"]
CMD ["run", "--config", "/etc/replicator/config.yaml"]
