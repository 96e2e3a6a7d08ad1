# pactwatch: one image for API replicas and workers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PACTWATCH_DATABASE_URL=sqlite:////data/pactwatch.db

WORKDIR /srv/pactwatch
COPY pyproject.toml README.md ./
COPY app ./app
COPY domain ./domain
COPY projections ./projections
COPY migrations ./migrations
RUN pip install . \
    && groupadd --system --gid 10001 pactwatch \
    && useradd --system --uid 10001 --gid 10001 --home-dir /srv/pactwatch pactwatch \
    && mkdir /data && chown 10001:10001 /data

USER 10001:10001
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["pactwatch"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
