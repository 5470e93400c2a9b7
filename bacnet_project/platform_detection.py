"""Choose how BACnet jobs reach the worker: through Celery, or through database rows.

Seed 001's rule: an explicit ``BACNET_BACKEND`` wins; inside Docker the Celery backend
(the container worker or a native worker consumes the ``bacnet`` queue); on native
Windows the database backend (a native worker polls ``BACnetTask`` rows); elsewhere
Celery. Seed 001 called these ``docker`` and ``native``; both words are still accepted.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

CELERY = "celery"
DATABASE = "database"
BACKENDS = (CELERY, DATABASE)
ALIASES = {"docker": CELERY, "native": DATABASE}


def normalise_backend(value: str) -> str:
    """Map a backend name or one of seed 001's aliases to ``celery`` or ``database``."""
    name = value.strip().lower()
    name = ALIASES.get(name, name)
    if name not in BACKENDS:
        allowed = ", ".join([*BACKENDS, *ALIASES])
        raise ImproperlyConfigured(f"BACNET_BACKEND={value!r} is not one of: {allowed}.")
    return name


def running_in_docker(environ: Mapping[str, str] = os.environ) -> bool:
    return Path("/.dockerenv").exists() or bool(environ.get("DOCKER_ENV"))


def detect_bacnet_backend(
    environ: Mapping[str, str] = os.environ,
    system: str | None = None,
    in_docker: bool | None = None,
) -> tuple[str, str]:
    """Return ``(backend, reason)``; the reason says why, for the start-up log."""
    override = environ.get("BACNET_BACKEND", "").strip()
    if override:
        return normalise_backend(override), f"BACNET_BACKEND={override}"
    if in_docker is None:
        in_docker = running_in_docker(environ)
    if in_docker:
        return CELERY, "running inside Docker"
    system = system or platform.system()
    if system == "Windows":
        return DATABASE, "native Windows host"
    return CELERY, f"{system or 'unknown'} host"


_logged = False


def log_backend_choice(backend: str, reason: str) -> None:
    """Log the choice once per process, so web and worker logs can be compared."""
    global _logged
    if not _logged:
        logger.info("BACnet backend: %s (%s)", backend, reason)
        _logged = True
