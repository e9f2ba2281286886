FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY watcher ./watcher
RUN pip install .

COPY config ./config
COPY rules.yaml ./rules.yaml
COPY seeds ./seeds

RUN useradd --system --uid 10001 --home-dir /data watcher \
    && mkdir -p /data && chown watcher /data
# The bundled config writes to ../data (= /app/data); point it at the volume.
RUN ln -s /data /app/data

USER watcher
VOLUME ["/data"]
ENV WATCHER_CONFIG=/app/config/watcher.yaml
CMD ["watcher", "run"]
