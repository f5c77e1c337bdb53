# The Connector's image: an organization's own client of the backbone.
#
#   docker build -f deploy/container/connector.Dockerfile -t backbone-connector:0.1.0 .   (repository root)
#
# The default command creates the organization's identity on first start (`connector init
# --if-missing`) and then serves (`connector serve`). It needs CONNECTOR_BACKBONE_URL,
# CONNECTOR_CLIENT_ID / CONNECTOR_CLIENT_SECRET (an OAuth client of the backbone),
# CONNECTOR_API_KEY (callers send it as X-API-KEY) and CONNECTOR_STORAGE_KEY (seals the
# keys at rest), and a volume at /var/lib/connector: the identity's keys live there, and a
# Connector that loses them loses its identity.

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The Connector ships in the project's one wheel (its own `connector` command); it imports
# no server code (tests/unit checks that), the server packages are only along for the ride.
COPY pyproject.toml README.md ./
COPY backbone ./backbone
COPY schemas ./schemas
COPY api ./api
COPY streams ./streams
COPY connector ./connector
COPY deploy ./deploy
COPY localproc ./localproc
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONNECTOR_HOST=0.0.0.0 \
    CONNECTOR_PORT=8090 \
    CONNECTOR_DATA_DIR=/var/lib/connector
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels backbone \
    && useradd --uid 10001 --user-group --home-dir /var/lib/connector --create-home connector \
    && chmod 0700 /var/lib/connector
COPY --chmod=0755 deploy/container/connector-run.sh /usr/local/bin/connector-run
USER 10001:10001
WORKDIR /var/lib/connector
VOLUME ["/var/lib/connector"]
EXPOSE 8090
# Liveness of the process; GET /health says whether the backbone is reachable too.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "deploy.container.healthcheck"]
CMD ["connector-run"]
