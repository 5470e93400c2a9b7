"""Settings for every process (web, workers, beat, Flower), read from the environment.

Embedded defaults need no server: SQLite and a file-system Celery broker in ``data/``.
``DATABASE_URL`` switches to PostgreSQL, ``REDIS_URL`` / ``CELERY_BROKER_URL`` to Redis.
Every variable is listed in ``.env.example`` and in the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from bacnet_project.platform_detection import detect_bacnet_backend

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env beside manage.py is shared by web and worker, so both agree on the backend.
environ.Env.read_env(env.str("BACNET_ENV_FILE", default=str(BASE_DIR / ".env")))

DEBUG = env.bool("DEBUG", default=False)
DATA_DIR = Path(env.str("BACNET_DATA_DIR", default=str(BASE_DIR / "data")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "your-secret-key-here"}
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if DEBUG:
    SECRET_KEY = SECRET_KEY or "insecure-development-key-only-used-with-debug-on"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]"]
else:
    if SECRET_KEY in PLACEHOLDER_SECRETS or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "SECRET_KEY is missing or a placeholder: set SECRET_KEY to a random string of "
            "at least 32 characters (or set DEBUG=true for local development)."
        )
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS is empty: set ALLOWED_HOSTS to the comma-separated host names "
            "this site is served on (or set DEBUG=true for local development)."
        )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "discovery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bacnet_project.urls"
WSGI_APPLICATION = "bacnet_project.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, workers and beat share one file: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock up front (no upgrade deadlocks), and the timeout
    # makes a writer wait for the lock instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT_S", default=30),
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # Reconnect by itself after a database restart instead of failing every request.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
    # Site decisions that `check --deploy` asks about once HSTS is on.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: DRF answers a request without credentials with the first class's
    # challenge, so it gets 401 + "WWW-Authenticate: Token" (session auth has none: 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON nested deeper than a request ever needs is a 400, not a RecursionError (500).
    "DEFAULT_PARSER_CLASSES": [
        "discovery.api.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "discovery.api.filters.StrictOrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    # Capped: a huge ?limit= is cut down to max_limit, never a slow query or a 500.
    "DEFAULT_PAGINATION_CLASS": "discovery.api.pagination.CappedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "BACnet Monitor API",
    "DESCRIPTION": "Devices, points, readings, statistics and jobs of the BACnet monitor.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Celery ---------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# The longest one broker operation (connect, publish) may wait before it counts as failed.
# Keep it above kombu's BRPOP timeout (1 s), which the consumer's socket also waits out.
BACNET_BROKER_TIMEOUT_S = env.float("BACNET_BROKER_TIMEOUT_S", default=2.0)
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
BROKER_DIR = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's file transport: one folder carries the queues, one broadcast (so that
    # `celery inspect ping` and Flower work), one keeps processed messages.
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    # kombu's own, with its bindings file made safe for processes starting together.
    CELERY_BROKER_TRANSPORT = "bacnet_project.file_broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(BROKER_DIR / "control"),
    }
else:
    # Redis re-delivers an unacknowledged task after this long: keep every task far
    # shorter (see the time limits below), and use the same value for results.
    # Socket and connect timeouts: a broker that accepts connections but never answers
    # (paused, disk full, packets dropped) fails a send within seconds instead of
    # holding the web request (and the worker) until it wakes.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 3600,
        "socket_timeout": BACNET_BROKER_TIMEOUT_S,
        "socket_connect_timeout": BACNET_BROKER_TIMEOUT_S,
    }
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_TIMEOUT = BACNET_BROKER_TIMEOUT_S
# The result backend (if one is configured) is bounded the same way.
CELERY_REDIS_SOCKET_TIMEOUT = BACNET_BROKER_TIMEOUT_S
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = BACNET_BROKER_TIMEOUT_S
# Workers retry reaching the broker for as long as it is away (Celery's default gives
# up after 100 attempts, about 45 minutes, and the worker exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
# BACnetTask rows are the record of every job; Celery results are not needed.
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE

CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_TASK_ROUTES = (
    # BACnet work goes to the worker on its site's LAN: queue "bacnet" for the default
    # site (seed 003), "bacnet.<site>" for each other site (DESIGN "Scale out").
    "discovery.routing.route_task",
    {
        # Statistics run on the ordinary workers.
        "discovery.tasks.calculate_hourly_stats": {"queue": "default"},
        "discovery.tasks.calculate_daily_stats": {"queue": "default"},
        "discovery.tasks.relinquish_due_overrides": {"queue": "default"},
        "discovery.tasks.maintain_readings": {"queue": "default"},
        # Alarm notices go out from the ordinary workers, never the BACnet worker.
        "discovery.tasks.deliver_alert": {"queue": "default"},
        "discovery.tasks.send_due_alerts": {"queue": "default"},
        "discovery.tasks.request_event_polls": {"queue": "default"},
    },
)
# At-least-once for BACnet work: acknowledge after the task ran, hand a task back if its
# worker died, and take one message at a time so a busy solo worker hoards nothing.
# Writes are idempotent (readings are unique per point and time), so a re-run is safe.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The solo pool (the BACnet worker) does not enforce these: BACnet code has its own
# deadlines. They still bound the prefork workers that run rollups.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=660)
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
# django-celery-beat's DatabaseScheduler, sending collection once per window (discovery.windows).
CELERY_BEAT_SCHEDULER = "discovery.schedules:WindowScheduler"

# --- BACnet ---------------------------------------------------------------------------
# Logged once at start-up by DiscoveryConfig.ready(), when logging is configured.
BACNET_BACKEND, BACNET_BACKEND_REASON = detect_bacnet_backend()
# "192.168.1.5/24", "192.168.1.5/24:47809"; empty: auto-detected from the host.
BACNET_INTERFACE = env.str("BACNET_INTERFACE", default="")
BACNET_PORT = env.int("BACNET_PORT", default=47808)
# The BACnet worker's own device instance; the product keeps it and the 63 after it for
# its processes and never stores them as devices (discovery.product_identity).
BACNET_DEVICE_INSTANCE = env.int("BACNET_DEVICE_INSTANCE", default=3056999)
# The instance of `manage.py discover` / `collect`; unset: chosen in that block.
BACNET_TOOL_DEVICE_INSTANCE = env.int("BACNET_TOOL_DEVICE_INSTANCE", default=None)
BACNET_BBMD_ADDRESS = env.str("BACNET_BBMD_ADDRESS", default="")
BACNET_BBMD_TTL = env.int("BACNET_BBMD_TTL", default=900)
BACNET_APDU_TIMEOUT_MS = env.int("BACNET_APDU_TIMEOUT_MS", default=3000)
BACNET_APDU_RETRIES = env.int("BACNET_APDU_RETRIES", default=1)
BACNET_REQUEST_DEADLINE_S = env.float("BACNET_REQUEST_DEADLINE_S", default=8.0)
BACNET_DEVICE_DEADLINE_S = env.float("BACNET_DEVICE_DEADLINE_S", default=30.0)
BACNET_DISCOVERY_QUIET_S = env.float("BACNET_DISCOVERY_QUIET_S", default=0.5)
BACNET_DISCOVERY_MAX_S = env.float("BACNET_DISCOVERY_MAX_S", default=5.0)
BACNET_READ_CONCURRENCY = env.int("BACNET_READ_CONCURRENCY", default=16)
BACNET_OFFLINE_AFTER_S = env.int("BACNET_OFFLINE_AFTER_S", default=600)
# Change of value (docs/bacnet.md): subscription lifetime (renewed at half of it),
# confirmed or unconfirmed notifications, how often received notifications are stored,
# how long a "cov-check" point may stay unheard before it is polled, and when a refused
# subscription is asked for again.
BACNET_COV_LIFETIME_S = env.int("BACNET_COV_LIFETIME_S", default=600)
BACNET_COV_CONFIRMED = env.bool("BACNET_COV_CONFIRMED", default=False)
BACNET_COV_FLUSH_S = env.float("BACNET_COV_FLUSH_S", default=0.5)
BACNET_COV_CHECK_S = env.int("BACNET_COV_CHECK_S", default=900)
BACNET_COV_RETRY_S = env.int("BACNET_COV_RETRY_S", default=3600)
# Alarms (docs/bacnet.md "Alarms and events"): how often devices that support it are
# asked GetEventInformation / GetAlarmSummary (0: never), and the process identifier and
# kind of notifications the worker asks for when it registers as a recipient.
BACNET_EVENT_POLL_S = env.int("BACNET_EVENT_POLL_S", default=300)
BACNET_EVENT_PROCESS_ID = env.int("BACNET_EVENT_PROCESS_ID", default=1)
# Event notifications kept in memory while the database is away (the oldest go first).
BACNET_EVENT_BUFFER = env.int("BACNET_EVENT_BUFFER", default=50_000)
# The collection period installed in the "Collect readings" schedule on the first migrate;
# afterwards the schedule (admin) is the one source of truth, in both backends.
BACNET_COLLECT_INTERVAL_S = env.int("BACNET_COLLECT_INTERVAL_S", default=60)
# A scheduled cycle starting later than max(period, this) after its window's start is
# skipped (recorded as a gap), not stored as that window's history.
BACNET_COLLECT_MAX_LATE_S = env.int("BACNET_COLLECT_MAX_LATE_S", default=60)
# How often the database-backend worker recomputes recent hourly and daily statistics.
BACNET_ROLLUP_INTERVAL_S = env.int("BACNET_ROLLUP_INTERVAL_S", default=300)
# Readings history (PostgreSQL: time partitions; bench/RESULTS.md "partitions").
BACNET_READINGS_PARTITION = env.str("BACNET_READINGS_PARTITION", default="day")
BACNET_READINGS_PARTITIONS_AHEAD_DAYS = env.int("BACNET_READINGS_PARTITIONS_AHEAD_DAYS", default=7)
# Retention in days; 0 keeps everything. Raw readings go (whole partitions on PostgreSQL)
# only once their hourly and daily statistics exist.
BACNET_RETENTION_RAW_DAYS = env.int("BACNET_RETENTION_RAW_DAYS", default=0)
BACNET_RETENTION_HOURLY_DAYS = env.int("BACNET_RETENTION_HOURLY_DAYS", default=0)
BACNET_RETENTION_DAILY_DAYS = env.int("BACNET_RETENTION_DAILY_DAYS", default=0)
# Store on change per object type (JSON), e.g. {"analog-input": {"deadband": 0.2,
# "heartbeat_minutes": 15}, "binary-input": {"heartbeat_minutes": 60}}; each point's own
# deadband / heartbeat fields win. Empty: every reading is stored.
BACNET_STORE_RULES: dict[str, dict[str, float]] = env.json("BACNET_STORE_RULES", default={})
# The longest a stored value is held (charts, statistics, CSV) when no reading follows:
# a point's hold limit is its expected gap between readings plus two polls, at most this
# (discovery/services/time_weighted.py, docs/history.md). Default a day.
BACNET_HOLD_MAX_S = env.int("BACNET_HOLD_MAX_S", default=86400)
BACNET_WORKER_HEARTBEAT_S = env.int("BACNET_WORKER_HEARTBEAT_S", default=10)
BACNET_JOB_STALE_AFTER_S = env.int("BACNET_JOB_STALE_AFTER_S", default=120)
BACNET_JOB_MAX_ATTEMPTS = env.int("BACNET_JOB_MAX_ATTEMPTS", default=3)
# A job of a site with no live worker fails after this long (0: it waits, as it always did).
BACNET_JOB_NO_WORKER_FAIL_S = env.int("BACNET_JOB_NO_WORKER_FAIL_S", default=0)
# The pages' live job stream: a keep-alive comment this often, and a reconnect after max.
BACNET_EVENTS_KEEPALIVE_S = env.float("BACNET_EVENTS_KEEPALIVE_S", default=15.0)
BACNET_EVENTS_MAX_S = env.float("BACNET_EVENTS_MAX_S", default=300.0)
FLOWER_URL = env.str("FLOWER_URL", default="http://localhost:5555")
# Commanding points: whether every write must say why, and how often due timed
# overrides are looked for (the database worker; Celery beat's "Relinquish overrides").
BACNET_COMMAND_REASON_REQUIRED = env.bool("BACNET_COMMAND_REASON_REQUIRED", default=True)
BACNET_OVERRIDE_CHECK_S = env.int("BACNET_OVERRIDE_CHECK_S", default=10)

# --- Alarm notifications (discovery.services.alerts) ----------------------------------
# Django's mail settings (SMTP; EMAIL_BACKEND=django.core.mail.backends.console.EmailBackend
# prints the e-mails instead, for a try-out).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
# Bounds each connection to the mail server, as the webhook timeout bounds each POST.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="bacnet-monitor@localhost")
ALERT_WEBHOOK_TIMEOUT_S = env.float("ALERT_WEBHOOK_TIMEOUT_S", default=10.0)
# A failed notice is tried again after this, doubling each time (at most an hour), up to
# ALERT_MAX_ATTEMPTS attempts in all.
ALERT_RETRY_BACKOFF_S = env.float("ALERT_RETRY_BACKOFF_S", default=30.0)
ALERT_MAX_ATTEMPTS = env.int("ALERT_MAX_ATTEMPTS", default=8)
# The product's address, for the link to the alarms page in each notice (optional).
ALERT_BASE_URL = env.str("ALERT_BASE_URL", default="")

# --- Logging --------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # BAC0 and bacpypes3 are chatty at INFO; their warnings still show.
        "BAC0_Root": {"level": "WARNING"},
        "bacpypes3": {"level": "WARNING"},
    },
}
