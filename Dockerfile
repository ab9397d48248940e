# syntax=docker/dockerfile:1
# The durapay image: one image, three processes (`worker`, `api`, `migrate`; the entry point is the
# `durapay` CLI). Build: `docker build -t durapay:0.1.0 .` Configuration and secrets are mounted at run
# time (DURAPAY_CONFIG, DURAPAY_SECRETS_DIR; deploy/README.md), never baked in: .dockerignore lets
# only the packages and their metadata into the build context.

# ---- build: install durapay and its pinned dependencies into a virtualenv
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/durapay
WORKDIR /src
COPY pyproject.toml README.md ./
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY workers ./workers
RUN /opt/durapay/bin/pip install . \
    && /opt/durapay/bin/python -m compileall -q /opt/durapay/lib

# ---- runtime: the virtualenv on the same base, run as an unprivileged user
FROM python:3.11.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 durapay \
    && useradd --system --uid 10001 --gid durapay --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin durapay \
    && install -d -o durapay -g durapay /var/lib/durapay
COPY --from=build /opt/durapay /opt/durapay
ENV PATH=/opt/durapay/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DURAPAY_CONFIG=/etc/durapay/durapay.toml
WORKDIR /var/lib/durapay
USER 10001:10001
# API (/v1, /webhooks, /metrics), worker health, Temporal SDK metrics, worker metrics.
EXPOSE 8080 8081 9464 9465
ENTRYPOINT ["durapay"]
CMD ["--help"]
