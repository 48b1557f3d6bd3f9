# trailguard daemon: `trailguard run -c /etc/trailguard/trailguard.yml`
# Build: docker build -t trailguard .   Run: see docs/deploy.md and examples/compose.yml
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Dependencies from the lock first: this layer survives code changes.
COPY requirements.lock ./
RUN pip install --prefix=/install --requirement requirements.lock
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY rules ./rules
RUN pip install --prefix=/install --no-deps .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="trailguard" \
      org.opencontainers.image.description="Detection-as-code alerting for AWS CodeArtifact"
RUN groupadd --system --gid 10001 trailguard \
    && useradd --system --uid 10001 --gid trailguard --home-dir /var/lib/trailguard \
       --shell /usr/sbin/nologin trailguard \
    && mkdir -p /var/lib/trailguard /etc/trailguard \
    && chown trailguard:trailguard /var/lib/trailguard
COPY --from=build /install /usr/local
COPY examples/container.yml /etc/trailguard/trailguard.yml
ENV PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/trailguard
VOLUME ["/var/lib/trailguard"]
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["trailguard"]
CMD ["run", "-c", "/etc/trailguard/trailguard.yml"]
