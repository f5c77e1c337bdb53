# The backbone's image: the API, the workers and provisioning, from one wheel.
#
#   docker build -f deploy/container/backbone.Dockerfile -t backbone:0.1.0 .    (from the repository root)
#
#   backbone api --host 0.0.0.0      the REST API (the default command)
#   backbone worker                  a faust worker (deciders, projections, sequencer)
#   backbone provision               create the topics and tables (idempotent), then exit
#
# Settings come from the environment (README, "Configuration"); the master key, signing seed
# and client secrets must be given (BACKBONE_MASTER_KEY, BACKBONE_SIGNING_SEED, BACKBONE_CLIENTS):
# without them a process invents keys of its own in its state directory, which another
# replica could not read.

# A tag, not a digest: security fixes of the base image arrive with a rebuild.
FROM python:3.11-slim-bookworm AS build
# A compiler for any dependency without a wheel for this platform (only in this stage).
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the wheel is made of: no tests, benchmarks, state or virtual environments.
COPY pyproject.toml README.md ./
COPY backbone ./backbone
COPY schemas ./schemas
COPY api ./api
COPY streams ./streams
COPY connector ./connector
COPY deploy ./deploy
COPY localproc ./localproc
# The project's wheel and every dependency's, so the final stage installs offline.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BACKBONE_API_HOST=0.0.0.0 \
    BACKBONE_API_PORT=8080 \
    BACKBONE_WORKER_METRICS_PORT=9102 \
    BACKBONE_WORKER_METRICS_HOST=0.0.0.0 \
    BACKBONE_STATE_DIR=/var/lib/backbone
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels backbone \
    && useradd --uid 10001 --user-group --home-dir /var/lib/backbone --create-home backbone
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without a name lookup.
USER 10001:10001
WORKDIR /var/lib/backbone
EXPOSE 8080 9102
# API: /health; worker: its metrics port (deploy/container/healthcheck.py says why).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "deploy.container.healthcheck"]
ENTRYPOINT ["backbone"]
CMD ["api", "--host", "0.0.0.0"]
