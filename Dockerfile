# tracetriage container image.
#
#   docker build -t tracetriage:0.1.0 .
#   docker run --rm -p 4317:4317 -p 4318:4318 -p 8888:8888 -p 13133:13133 \
#     -e TT_METRICS=0.0.0.0:8888 -e TRACES_BACKEND=tempo.example:4317 tracetriage:0.1.0
#
# (/metrics listens on 127.0.0.1 in the container unless TT_METRICS asks for more, as above.)
#
# Every build step is in scripts/docker-build-steps.sh, which tests/deploy/test_image_build.py runs outside
# Docker into a fresh venv and then starts (no Docker engine runs on our machines). The default command runs
# /etc/tracetriage/gateway.yaml (configs/gateway.yaml) with the example ownership catalog in
# /etc/tracetriage/catalog; mount your own catalog there, or your own config and pass `run --config FILE`.
# The image holds the runtime (collector, pipelines) only: the tools in bench/ stay out, so `tracetriage demo`
# and `tracetriage loadgen` say they are not available here (run them from a source checkout).

# ---- build: a venv with tracetriage and its runtime dependencies (wheels only: no compiler needed) ----
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel and the image need (see .dockerignore); keep in step with SOURCES in the script.
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY pipelines ./pipelines
COPY configs ./configs
COPY scripts/docker-build-steps.sh ./scripts/docker-build-steps.sh

RUN bash scripts/docker-build-steps.sh build /opt/venv /src \
 && bash scripts/docker-build-steps.sh install-config /opt/etc/tracetriage /src \
 && bash scripts/docker-build-steps.sh verify /opt/venv /opt/etc/tracetriage

# ---- runtime: the same base, the venv and the configs, a non-root user ----
FROM python:3.11.14-slim-bookworm

LABEL org.opencontainers.image.title="tracetriage" \
      org.opencontainers.image.description="Streaming trace processor: tail sampling, root-cause walk and alert routing, OTel Collector compatible" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"

# NUMBA_CACHE_DIR: the compiled wire walk is compiled on the first start and cached in the working directory
# (a few seconds once); where that is not writable it stays off and the collector logs why.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/var/lib/tracetriage/.numba-cache

# uid/gid 10001: the numeric id lets Kubernetes check runAsNonRoot. /var/lib/tracetriage is the working
# directory (file exporter, file_storage); mount a volume there when the root filesystem is read-only.
RUN groupadd --system --gid 10001 tracetriage \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/tracetriage \
      --shell /usr/sbin/nologin tracetriage \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/tracetriage

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/etc/tracetriage /etc/tracetriage

USER 10001:10001
WORKDIR /var/lib/tracetriage

# OTLP gRPC, OTLP HTTP, Prometheus /metrics, health_check
EXPOSE 4317 4318 8888 13133

# The health_check extension answers 200 once every component has started, 503 otherwise; urlopen raises
# (exit 1) on 503 or no answer. The port follows TT_HEALTH, the variable gateway.yaml takes it from.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; p = os.environ.get('TT_HEALTH', '0.0.0.0:13133').rpartition(':')[2]; u.urlopen('http://127.0.0.1:' + p + '/', timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["tracetriage"]
CMD ["run", "--config", "/etc/tracetriage/gateway.yaml"]
