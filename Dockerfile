# Build stage: a wheel of watcher and its dependencies, built once.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY watcher ./watcher
RUN pip wheel --wheel-dir /wheels ".[postgres]"

# Run stage: only the installed package, config, rules and the demo seeds.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    WATCHER_CONFIG=/app/config/watcher.yaml
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels "watcher[postgres]" && rm -rf /wheels
WORKDIR /app
COPY config ./config
COPY rules.yaml ./rules.yaml
COPY seeds ./seeds
# The bundled config keeps its database and alert file in ../data (= /app/data):
# point that at the volume. Mount your own config/ and rules.yaml over /app.
RUN useradd --system --uid 10001 --home-dir /data watcher \
    && mkdir -p /data && chown watcher /data && ln -s /data /app/data
USER watcher
VOLUME ["/data"]
EXPOSE 9464
# /healthz answers when metrics.listen is set (docker-compose.yml sets it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os,sys,urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:' + os.environ.get('WATCHER_METRICS_PORT', '9464') + '/healthz', timeout=4).status == 200 else 1)"
CMD ["watcher", "run"]
