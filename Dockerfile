# CampBot service image: `docker run -p 8000:8000 -v campbot-data:/data --env-file .env IMAGE`
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Fixed ids so a mounted /data can be prepared on the host (chown 10001:10001).
RUN groupadd --system --gid 10001 campbot \
 && useradd --system --uid 10001 --gid campbot --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin campbot

# A CJK font: 喜报 posters and certificates print Chinese (bots/xibao/poster.py finds it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-wqy-microhei \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so editing the code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The project itself (no dev extras). Editable on purpose: app/migrations.py finds alembic.ini
# next to the `app` package, i.e. in /app; a regular install into site-packages would not.
# The code stays root-owned and read-only for the service user.
COPY . .
RUN pip install --no-deps -e . \
 && chmod 0755 docker/entrypoint.sh \
 && mkdir -p /data/uploads \
 && chown campbot:campbot /data /data/uploads

# The SQLite database lives on a volume; set DATABASE_URL to a PostgreSQL URL to use that instead.
ENV DATABASE_URL=sqlite+aiosqlite:////data/campbot.db
VOLUME ["/data"]

USER campbot
# The service runs in the volume: H5 uploads go to ./uploads (app/storage.py), next to the
# SQLite file. The code is imported from /app (an editable install).
WORKDIR /data
EXPOSE 8000

# GET /healthz answers 200 when the database answers (slim has no curl; python does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# campbot migrate, then uvicorn app.main:app --host 0.0.0.0 --port 8000
CMD ["/app/docker/entrypoint.sh"]
