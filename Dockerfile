# One image for every streamplane process: the orchestrator, the worker agent, the Faust
# projector, the PostgreSQL read model and the HTTP API. The entrypoint is the `streamplane`
# CLI; docker-compose.yml picks the sub-command (`orchestrator`, `worker`, `api`, ...).

# --- build: install the project (non-editable, no dev extras) into a virtualenv --------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/streamplane
WORKDIR /src
# A copy of the repository (.dockerignore keeps out .venv, .git, caches and test output).
COPY . .
RUN /opt/streamplane/bin/pip install .

# --- runtime: the virtualenv only, run as an unprivileged user ------------------------------
FROM python:3.11-slim

# STREAMPLANE_CACHE_DIR: `streamplane demo` and `infra` write below the installed package by
# default, which this user may not write to.
ENV PATH=/opt/streamplane/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMPLANE_CACHE_DIR=/home/streamplane/.cache/streamplane

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin streamplane \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/streamplane-api
# /var/lib/streamplane-api: the API's token file (a volume in docker-compose.yml; a new
# volume takes this directory's owner and mode)
COPY --from=build /opt/streamplane /opt/streamplane

# Numeric, so that runtimes checking runAsNonRoot can see it is not root.
USER 10001:10001
WORKDIR /home/streamplane

ENTRYPOINT ["streamplane"]
CMD ["--help"]
