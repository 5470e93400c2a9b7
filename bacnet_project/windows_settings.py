"""Settings for the native BACnet worker (``bacnet_worker_windows.py``), on any OS.

Everything comes from ``settings.py`` and so from the same environment and ``.env`` as
the web: database, broker, backend and BACnet interface are not overridden here, so the
worker and the web can never disagree about them. On a Windows host running the
containers with ``docker-compose.windows.yml``, ``.env`` points ``DATABASE_URL`` and
``REDIS_URL`` at ``127.0.0.1`` (the ports compose publishes on loopback); nothing in
this file hard-codes a host.

What differs for a native worker is only logging: every line is tagged with the worker
and its host (several workers write to one place when logs are collected), a rotating
log file is kept under the data directory (a console window on Windows is easily
closed), and Celery does not replace these handlers with its own.
"""

from __future__ import annotations

import copy
import socket
from pathlib import Path

from .settings import *  # noqa: F403
from .settings import DATA_DIR, LOG_LEVEL, LOGGING, env

# An empty value turns the file off (the container worker logs to stdout only).
BACNET_WORKER_LOG_FILE = env.str(
    "BACNET_WORKER_LOG_FILE", default=str(DATA_DIR / "logs" / "bacnet_worker.log")
)
BACNET_WORKER_LOG_MAX_BYTES = env.int("BACNET_WORKER_LOG_MAX_BYTES", default=10 * 1024 * 1024)
BACNET_WORKER_LOG_BACKUPS = env.int("BACNET_WORKER_LOG_BACKUPS", default=5)

# "%" in a host name would break %-style formatting.
_tag = f"bacnet-worker@{socket.gethostname()}".replace("%", "%%")

LOGGING = copy.deepcopy(LOGGING)
LOGGING["formatters"]["worker"] = {
    "format": f"%(asctime)s %(levelname)s [{_tag} pid %(process)d] %(name)s: %(message)s"
}
LOGGING["handlers"]["console"]["formatter"] = "worker"
if BACNET_WORKER_LOG_FILE:
    Path(BACNET_WORKER_LOG_FILE).parent.mkdir(parents=True, exist_ok=True)
    LOGGING["handlers"]["file"] = {
        # Only this process writes the file, so rotating in place is safe on Windows.
        "class": "logging.handlers.RotatingFileHandler",
        "filename": BACNET_WORKER_LOG_FILE,
        "maxBytes": BACNET_WORKER_LOG_MAX_BYTES,
        "backupCount": BACNET_WORKER_LOG_BACKUPS,
        "encoding": "utf-8",
        "formatter": "worker",
    }
    LOGGING["root"]["handlers"] = ["console", "file"]
LOGGING["root"]["level"] = LOG_LEVEL

# Celery would otherwise drop the root handlers above (the file log) for its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
