# One image for every process: web (the default command), Celery workers, beat, Flower
# and the Linux BACnet worker (docker-compose.yml picks the command).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BACNET_DATA_DIR=/app/data

# A fixed uid, so that files on mounted volumes have a predictable owner.
RUN groupadd --system --gid 10001 bacnet \
    && useradd --system --uid 10001 --gid bacnet --create-home --home-dir /home/bacnet \
       --shell /usr/sbin/nologin bacnet

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY --chown=bacnet:bacnet . .

# Static files are collected at build time. The settings refuse to load without a real
# secret, so a throwaway one is given to this step only (never kept in the image), and
# no .env is read.
RUN SECRET_KEY=collectstatic-at-build-time-only-not-a-real-secret \
    ALLOWED_HOSTS=localhost BACNET_ENV_FILE=/dev/null \
    python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R bacnet:bacnet /app/data

USER 10001:10001

EXPOSE 8000

# The web's health (the first ALLOWED_HOSTS entry as Host header, so that Django accepts
# the request); docker-compose.yml gives the other services checks of their own.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; h = os.environ.get('ALLOWED_HOSTS', '').split(',')[0].strip().lstrip('.'); h = 'localhost' if h in ('', '*') else h; u.urlopen(u.Request('http://127.0.0.1:8000/healthz', headers={'Host': h}), timeout=5)"]

# Threads, so that open live-update streams do not hold the only worker.
CMD ["gunicorn", "bacnet_project.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--workers", "2", "--threads", "16", "--access-logfile", "-"]
