# syntax=docker/dockerfile:1
# Build: docker build -t foundation-bot .
# Run:   docker run --rm -it -v fbdata:/data foundation-bot run --console
# The base image must provide Python 3.11 as `python` with the venv module and `useradd`; CI
# builds on a Debian bookworm base of its own (.ci/image-check): --build-arg BASE_IMAGE=...
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY announcements ./announcements
COPY migrations ./migrations
RUN pip install .

FROM ${BASE_IMAGE}
RUN useradd --system --create-home --home-dir /home/bot --uid 10001 bot \
    && mkdir /data && chown bot /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FOUNDATION_BOT_DATABASE_URL=sqlite+aiosqlite:////data/foundation-bot.db
USER bot
WORKDIR /data
EXPOSE 8080
# The web server listens on 127.0.0.1 by default; set web.host = "0.0.0.0" in the config
# (mounted at /config.toml) to reach /healthz from outside the container.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["foundation-bot"]
CMD ["run"]
