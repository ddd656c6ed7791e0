# sts-broker: slim image, non-root, health-checked.
#   docker build -t sts-broker .
#   docker run -p 127.0.0.1:8080:8080 sts-broker       (the demo: loopback only, its IdPs sign in anyone)
#   docker run -p 8080:8080 -v $PWD/config:/config sts-broker serve /config/broker.yaml --host 0.0.0.0
#   ... serve /config/broker.yaml --host 0.0.0.0 --workers 2   (state: sqlite or redis; docs/deployment.md)
# docker stop sends SIGTERM: the broker stops accepting and lets requests in flight finish.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker ./broker
COPY idp_fixtures ./idp_fixtures
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/sts-broker --create-home broker
COPY --from=build /wheels /wheels
# The wheels include uvicorn's standard extra: serve then parses HTTP with httptools and runs
# on uvloop. Fail the build, not the first request, if either is missing.
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && python -c "import httptools, uvloop"
COPY config/demo.yaml /etc/sts-broker/demo.yaml
USER broker
WORKDIR /var/lib/sts-broker
ENV STS_BROKER_CONFIG=/etc/sts-broker/demo.yaml \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["sts-broker"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
