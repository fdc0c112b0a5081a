# docko-worker: the worker daemon as a container image.
#
#   docker build -t docko-worker .
#   docker run --rm --init -e DOCKO_DATABASE_URL=postgresql://user:pass@db:5432/app docko-worker
#                                                    # `docko-worker run`: the daemon
#   docker run --rm -e DOCKO_DATABASE_URL=... docko-worker migrate   # or any other subcommand
#
# Configuration is by DOCKO_* environment variables only, given at run time: nothing secret is
# built into the image. Two stages: `build` makes the wheel (it carries sql/ as docko_worker/sql)
# and installs it, with its dependencies and any handler packages, into the virtual environment
# /opt/venv; `runtime` is a clean copy of the base image plus that venv and an unprivileged user.
# The base is a build arg: any image with python3 (>= 3.11) and its venv module will do, e.g.
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim .
#
# HANDLERS. `docko-worker run` runs the handlers of every installed package that declares entry
# points in group "docko_worker.handlers" (see examples/handlers/). The image built from this file
# alone has none, so `run` exits 2 with "no handlers". Add yours in one of three ways:
#
#   1. Build arg, installed in the build stage (the runtime stage stays clean):
#        docker build --build-arg HANDLER_PACKAGES="acme-docs==1.4.2" -t acme-worker .
#        docker build --build-arg HANDLER_PACKAGES=./examples/handlers -t docko-worker-example .
#      HANDLER_PACKAGES is a space-separated list of pip requirements: names from the package
#      index, or paths relative to this build context. Put no index credentials in it: for a
#      private index use way 2 with a BuildKit secret mount (RUN --mount=type=secret,...).
#   2. Your own image FROM this one:
#        FROM docko-worker
#        USER root
#        RUN pip install acme-docs==1.4.2
#        USER docko
#   3. Mounted at run time: `pip install --no-deps --target ./handlers acme-docs` on the host
#      (its dependencies must already be in the image, or in ./handlers for the image's Python),
#        docker run -v "$PWD/handlers:/handlers:ro" -e PYTHONPATH=/handlers ... docko-worker
#      (entry points are read from the *.dist-info directories on PYTHONPATH).
#
# HEALTH. While its event loop runs, the daemon touches $DOCKO_HEALTH_FILE every few seconds;
# `docko-worker healthcheck` exits 0 if the file was touched in the last 30 s. The file lives in
# /tmp, so a read-only root filesystem needs a tmpfs on /tmp. Kubernetes: use it as an exec
# liveness probe (`docko-worker healthcheck`).
#
# METRICS AND PROBES. The image serves GET /metrics (Prometheus), /healthz and /readyz on port 9808
# of every interface (DOCKO_HTTP_PORT, DOCKO_HTTP_HOST; unset DOCKO_HTTP_PORT to turn it off).
# Kubernetes: livenessProbe httpGet /healthz, readinessProbe httpGet /readyz (see the README).
#
# SHUTDOWN. SIGTERM lets running jobs finish for DOCKO_SHUTDOWN_TIMEOUT seconds (default 30), then
# hands them back to the queue; give the container a longer grace period than that (docker stop -t,
# compose stop_grace_period, Kubernetes terminationGracePeriodSeconds). Run with --init (compose:
# `init: true`) if handlers start subprocesses, so that an init process reaps them.

ARG PYTHON_IMAGE=python:3.12-slim

# --------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# `python3 -m venv` and the venv's own executables work in the official python images and in a
# Debian python3 alike (which name `python` and `pip` differently outside a venv).
RUN python3 -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml README.md ./
COPY docko_worker ./docko_worker
COPY sql ./sql

# Build the wheel, install it with its dependencies, and check that it carries the migrations.
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /dist . \
 && /opt/venv/bin/pip install /dist/docko_worker-*.whl \
 && /opt/venv/bin/python -I -c "import importlib.resources as r; \
assert r.files('docko_worker').joinpath('sql', '0001_initial.sql').is_file(), 'wheel lacks sql/'" \
 && /opt/venv/bin/docko-worker --help > /dev/null \
 && echo "docko-worker==$(/opt/venv/bin/python -I -c 'import docko_worker; print(docko_worker.__version__)')" \
      > /opt/docko-constraints.txt

# Handler packages (see HANDLERS above). The rest of the build context is copied here, into the
# build stage only, so that local paths resolve; the constraint keeps the docko-worker just built.
ARG HANDLER_PACKAGES=""
COPY . /context
RUN if [ -n "${HANDLER_PACKAGES}" ]; then \
        cd /context \
        && /opt/venv/bin/pip install --constraint /opt/docko-constraints.txt ${HANDLER_PACKAGES}; \
    fi \
 && /opt/venv/bin/python -I -c "from docko_worker import HandlerRegistry; \
r = HandlerRegistry(); r.load_entry_points(); print('docko-worker handlers:', r.job_types)"

# --------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# A fixed, unprivileged uid/gid (Kubernetes runAsNonRoot can check the numeric USER below).
ARG DOCKO_UID=10001
ARG DOCKO_GID=10001
RUN groupadd --gid "${DOCKO_GID}" docko \
 && useradd --no-log-init --uid "${DOCKO_UID}" --gid docko --home-dir /home/docko --create-home \
        --shell /usr/sbin/nologin docko

# Owned by root: the daemon's user can run the code but not change it.
COPY --from=build /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DOCKO_HEALTH_FILE=/tmp/docko-worker.health \
    DOCKO_HTTP_PORT=9808 \
    DOCKO_HTTP_HOST=0.0.0.0

LABEL org.opencontainers.image.title="docko-worker" \
      org.opencontainers.image.description="PostgreSQL-backed job queue and asyncio worker daemon" \
      org.opencontainers.image.licenses="MIT"

WORKDIR /home/docko
USER ${DOCKO_UID}:${DOCKO_GID}

EXPOSE 9808
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["docko-worker", "healthcheck"]

ENTRYPOINT ["docko-worker"]
CMD ["run"]
