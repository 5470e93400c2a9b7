"""What a finished job amounts to, in the words an operator reads: its outcome (completed,
completed with errors, failed, cancelled), a one-line summary ("14 devices, 240 points,
2 failed") and the devices that failed, each with its reason in plain words.

Plain functions over ``BACnetTask`` and its ``result``; the worker stores the summary and
the failed-device count when a job ends (``outcome_fields``), the pages and the API show
them, and the job lists filter on them. The two things an operator does to a job's
outcome from the pages and the API live here too: cancelling a pending job
(``cancel_job``) and Start Discovery clicked twice making one job (``request_discovery``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from discovery.models import DEFAULT_SITE_SLUG, BACnetTask

Status = BACnetTask.Status
Kind = BACnetTask.Kind


class Outcome:
    """The states shown for a job: its status, with "completed" split in two."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    LABELS = {
        PENDING: "Pending",
        RUNNING: "Running",
        COMPLETED: "Completed",
        COMPLETED_WITH_ERRORS: "Completed with errors",
        FAILED: "Failed",
        CANCELLED: "Cancelled",
    }
    CHOICES = list(LABELS.items())


def outcome_q(outcome: str) -> Q:
    """The jobs with this outcome, as a query (the job filters of the pages and the API)."""
    if outcome == Outcome.COMPLETED:
        return Q(status=Status.COMPLETED, failed_devices=0)
    if outcome == Outcome.COMPLETED_WITH_ERRORS:
        return Q(status=Status.COMPLETED, failed_devices__gt=0)
    return Q(status=outcome)


def job_outcome(task: BACnetTask) -> str:
    if task.status == Status.COMPLETED and task.failed_devices:
        return Outcome.COMPLETED_WITH_ERRORS
    return str(task.status)


def outcome_label(task: BACnetTask) -> str:
    return Outcome.LABELS.get(job_outcome(task), str(task.status))


# -- failed devices and their reasons ---------------------------------------------------

# Patterns of the BACnet client's error texts, and what they mean to an operator. The
# first that matches wins; the raw text stays available beside the plain words.
_PLAIN_REASONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.IGNORECASE), words)
    for p, words in [
        (r"not finished within|deadline|no complete answer", "took too long to answer"),
        (r"no answer|timeout|timed out", "did not answer"),
        (r"segmentation", "sends answers too large for it to split (segmentation)"),
        (r"unknown-object", "does not have an object it was asked for"),
        (r"unknown-property", "does not have a property it was asked for"),
        (r"read-access-denied|password|security", "refused access"),
        (r"unrecognized-service|unrecognised-service", "does not support the request"),
        (r"reject", "rejected the request"),
        (r"abort", "aborted the request"),
        (r"unsupported answer|decod|malformed", "sent an answer that could not be read"),
        (r"busy|out-of-resources", "was too busy to answer"),
        (r"cancelled", "the request was cancelled"),
    ]
]


def plain_reason(error: str) -> str:
    """A device's failure in plain words ("did not answer"), from the client's text."""
    for pattern, words in _PLAIN_REASONS:
        if pattern.search(error or ""):
            return words
    return "failed: " + (error or "no reason given")[:200]


@dataclass(frozen=True)
class FailedDevice:
    instance: int | None
    reason: str  # plain words
    detail: str  # the client's own text


def failed_devices(result: dict[str, Any] | None) -> list[FailedDevice]:
    """The devices a discovery or collection could not read, from the job's result."""
    if not isinstance(result, dict):
        return []
    failed = result.get("devices_failed")
    errors = failed if isinstance(failed, dict) else result.get("device_errors") or {}
    rows = []
    for key, detail in errors.items() if isinstance(errors, dict) else []:
        instance = int(key) if str(key).isdigit() else None
        rows.append(FailedDevice(instance, plain_reason(str(detail)), str(detail)[:500]))
    return sorted(rows, key=lambda row: (row.instance is None, row.instance or 0))


def failed_device_count(kind: str, result: dict[str, Any] | None) -> int:
    if not isinstance(result, dict):
        return 0
    failed = result.get("devices_failed")
    if isinstance(failed, dict):
        return len(failed)
    if isinstance(failed, int) and not isinstance(failed, bool):
        return failed
    return 0


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summarise(kind: str, result: dict[str, Any] | None) -> str:
    """One line for a completed job: "14 devices, 240 points, 2 failed" (discovery),
    "229 of 240 readings, 2 devices failed" (collection), "37 points, 2 new" (enumeration)."""
    if not isinstance(result, dict):
        return ""
    failed = failed_device_count(kind, result)
    if kind == Kind.DISCOVER:
        line = (
            f"{_plural(int(result.get('devices_found', 0)), 'device')}, "
            f"{_plural(int(result.get('points', 0)), 'point')}"
        )
        return line + (f", {failed} failed" if failed else "")
    if kind == Kind.COLLECT:
        points = int(result.get("points", 0))
        if not points:
            return "No points to read"
        line = f"{result.get('readings', 0)} of {_plural(points, 'reading')}"
        if failed:
            line += f", {_plural(failed, 'device')} failed"
        point_errors = int(result.get("point_errors", 0))
        if point_errors:
            line += f", {_plural(point_errors, 'point error')}"
        return line
    if kind == Kind.ENUMERATE:
        return (
            f"{_plural(int(result.get('points', 0)), 'point')}, {result.get('points_new', 0)} new"
        )
    if kind == Kind.WRITE:
        return str(result.get("message", ""))[:255]
    if kind == Kind.READ_PRIORITY:
        current = result.get("current_priority")
        return f"Priority {current} in control" if current else "Relinquish default in control"
    return ""


def outcome_fields(kind: str, result: dict[str, Any] | None) -> dict[str, Any]:
    """The outcome columns stored with a completed job's result."""
    return {
        "summary": summarise(kind, result)[:255],
        "failed_devices": failed_device_count(kind, result),
    }


def summary_line(task: BACnetTask) -> str:
    """The line every job list shows: the summary of a completed job, the reason of a
    failed one, the progress of one under way."""
    if task.status == Status.COMPLETED:
        return task.summary or summarise(task.kind, task.result)
    if task.status == Status.FAILED:
        first = (task.error_message or "no reason recorded").splitlines()[0]
        return f"Failed: {first}"[:300]
    if task.status == Status.CANCELLED:
        return "Cancelled before it started"
    return task.progress


# -- cancelling, and Start Discovery clicked twice ------------------------------------------


def cancel_job(task_id: int) -> bool:
    """pending -> cancelled, only while it is still pending: a worker claims only pending
    jobs, so a cancelled one is never started (its queue message finds it taken)."""
    from discovery.events import publish_task_change

    updated = BACnetTask.objects.filter(pk=task_id, status=Status.PENDING).update(
        status=Status.CANCELLED,
        progress="Cancelled",
        completed_at=timezone.now(),
    )
    if updated:
        publish_task_change(task_id)
    return bool(updated)


def _lock_discovery_requests() -> None:
    """Serialise discovery requests, so two clicks at once cannot both find no job and
    both create one. PostgreSQL: a transaction-level advisory lock; SQLite transactions
    are IMMEDIATE (see settings), which serialises writers already."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [0x42AC_D15C])


def request_discovery(
    parameters: dict[str, Any] | None, *, trigger: str, user: Any = None, site: Any = None
) -> tuple[BACnetTask, bool]:
    """Start a discovery, unless one with the same parameters is pending or running:
    then that one is returned (created False). Raises ``JobError`` for bad parameters."""
    from discovery.jobs import request_job, validate_parameters

    cleaned = validate_parameters(Kind.DISCOVER, parameters, site)
    with transaction.atomic():
        _lock_discovery_requests()
        active = (
            BACnetTask.objects.filter(
                kind=Kind.DISCOVER, status__in=[Status.PENDING, Status.RUNNING]
            )
            .filter(**({"site": site} if site is not None else {"site__slug": DEFAULT_SITE_SLUG}))
            .order_by("created_at")
            .only("id", "parameters", "status")
        )
        for task in active:
            if task.parameters == cleaned:
                return BACnetTask.objects.get(pk=task.pk), False
        task = request_job(Kind.DISCOVER, cleaned, trigger=trigger, user=user, site=site)
    # The job is handed to the backend when the block above commits: show what that did
    # (sent, or waiting for the broker).
    task.refresh_from_db()
    return task, True


def outcome_api_fields(task: BACnetTask) -> dict[str, Any]:
    """What the API adds to a job's status: its outcome, summary and failed devices."""
    return {
        "outcome": job_outcome(task),
        "outcome_label": outcome_label(task),
        "summary": summary_line(task),
        "failed_devices": [
            {"device_instance": row.instance, "reason": row.reason, "detail": row.detail}
            for row in failed_devices(task.result)
        ],
    }
