# syntax=docker/dockerfile:1
# One image, two processes: `durable-search operator` and `durable-search web`.
# Build: docker build -t durable-search:dev .

# -- build: the project's wheel and every dependency's, pinned by requirements/constraints.txt
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
COPY operator/ operator/
COPY webui/ webui/
RUN pip wheel --wheel-dir /wheels --constraint requirements/constraints.txt .

# -- runtime: no compilers, no pip cache, a non-root user, a read-only root filesystem friendly
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 10001 durable \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin durable
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels durable-search \
 && python -m compileall -q /usr/local/lib/python3.11/site-packages/durable_search \
      /usr/local/lib/python3.11/site-packages/durable_search_web
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["durable-search"]
CMD ["operator"]
