"""Change of value in the BACnet worker: subscriptions kept up, notifications stored.

The subscriptions live in the process that owns the BACnet socket (the notifications
come back to it), so ``CovKeeper`` is a thread of the BACnet worker, started with it in
both backends (``worker.become_bacnet_worker``): with Celery's solo pool the client's
loop thread keeps receiving between tasks, and this thread keeps storing. It

- stores what arrived every ``BACNET_COV_FLUSH_S``, all of it in one transaction
  through the general ``store_readings`` (never a transaction per notification);
  readings are stamped with their arrival, to 0.1 s (``_BUCKET_S``);
- subscribes the points kept by COV that are due: never subscribed by this worker
  (a worker restart resubscribes everything), at half their lifetime (a device that
  restarted and forgot them gets them back then), a refused one after
  ``BACNET_COV_RETRY_S``. Until a point is subscribed it is polled (``cov_state``
  says why), see ``collection.collection_plan``.

What arrives while the database is away is kept (bounded by ``MAX_PENDING``) and
written when it is back; what the bound drops is logged with its count.

The same thread applies the event notifications the worker received (alarms:
``alarm_events.EventStore``), on the same rhythm and with the same buffering.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from discovery.bacnet_types import (
    CovNotification,
    CovOutcome,
    CovTarget,
    DeviceReadResult,
    PointValue,
)
from discovery.models import BACnetPoint, CovState, Keeping, KeepingRule, default_site_id
from discovery.services.alarms import sync_alarms
from discovery.services.cycle_writes import lock_points_in_order
from discovery.services.storage import store_readings

log = logging.getLogger(__name__)

MAX_PENDING = 200_000
_BUCKET_S = 0.1
_COV_KEPT = (Keeping.COV, Keeping.COV_CHECK)


def with_keeping(points: QuerySet[BACnetPoint]) -> QuerySet[BACnetPoint]:
    """Annotate ``kept_as``: the point's own keeping, else its object type's rule, else
    polled."""
    rule = KeepingRule.objects.filter(object_type=OuterRef("object_type")).values("keeping")[:1]
    return points.annotate(
        kept_as=Coalesce(NullIf(F("keeping"), Value("")), Subquery(rule), Value(Keeping.POLLED))
    )


def polled_filter(now: datetime) -> Q:
    """The points collection polls: not kept by COV, or kept by COV without a working
    subscription (the fallback; one not renewed within its lifetime has lapsed, e.g.
    while its device was offline), or "cov-check" ones unheard for ``BACNET_COV_CHECK_S``."""
    unheard = now - timedelta(seconds=settings.BACNET_COV_CHECK_S)
    lapsed = now - timedelta(seconds=settings.BACNET_COV_LIFETIME_S)
    return (
        Q(kept_as=Keeping.POLLED)
        | ~Q(cov_state=CovState.SUBSCRIBED)
        | Q(cov_renewed_at__isnull=True)
        | Q(cov_renewed_at__lt=lapsed)
        | Q(kept_as=Keeping.COV_CHECK)
        & (Q(last_read_at__isnull=True) | Q(last_read_at__lt=unheard))
    )


def subscriptions_due(
    now: datetime, since: datetime, site_id: int | None = None
) -> list[tuple[int, CovTarget]]:
    """(point id, target) of the COV points of a site (default: the default site) whose
    subscription is due (see module)."""
    lifetime = settings.BACNET_COV_LIFETIME_S
    half = now - timedelta(seconds=max(1, lifetime // 2))
    retry = now - timedelta(seconds=settings.BACNET_COV_RETRY_S)
    points = with_keeping(
        BACnetPoint.objects.filter(
            device__site_id=site_id or default_site_id(),
            polling_enabled=True,
            missing_since__isnull=True,
            device__is_online=True,
        )
    ).filter(Q(kept_as__in=_COV_KEPT))
    due = (
        Q(cov_renewed_at__isnull=True)
        | Q(cov_renewed_at__lt=since)
        | ~Q(cov_state=CovState.REFUSED) & Q(cov_renewed_at__lt=half)
        | Q(cov_state=CovState.REFUSED, cov_renewed_at__lt=retry)
    )
    rows = points.filter(due).values_list(
        "id", "device__device_instance", "device__address", "object_type", "object_instance"
    )
    confirmed = settings.BACNET_COV_CONFIRMED
    return [
        (pk, CovTarget(device, address, object_type, instance, confirmed, lifetime))
        for pk, device, address, object_type, instance in rows
    ]


def record_outcomes(
    outcomes: Sequence[CovOutcome], ids: dict[CovTarget, int], now: datetime
) -> None:
    """Each point's subscription state: subscribed (renewed now), refused or no answer
    (polled meanwhile, the reason in ``cov_note``)."""
    by_state: dict[tuple[str, str], list[int]] = defaultdict(list)
    for outcome in outcomes:
        if not outcome.error:
            state: str = CovState.SUBSCRIBED
        elif outcome.refused:
            state = CovState.REFUSED
        else:
            state = CovState.NO_ANSWER
        by_state[(state, outcome.error)].append(ids[outcome.target])
    with transaction.atomic():
        lock_points_in_order([pk for pks in by_state.values() for pk in pks])
        for (state, note), pks in by_state.items():
            BACnetPoint.objects.filter(pk__in=pks).update(
                cov_state=state, cov_note=note, cov_renewed_at=now
            )


def forget_uncovered(site_id: int | None = None) -> int:
    """Points moved back to polling lose their subscription state (the device lets the
    subscription lapse at the end of its lifetime)."""
    points = BACnetPoint.objects.filter(device__site_id=site_id or default_site_id())
    return (
        with_keeping(points.exclude(cov_state=""))
        .exclude(Q(kept_as__in=_COV_KEPT))
        .update(cov_state="", cov_note="", cov_renewed_at=None)
    )


def renew_subscriptions(client: Any, since: datetime, site_id: int | None = None) -> int:
    """Subscribe (or renew) a site's due points; returns how many were asked for."""
    forget_uncovered(site_id)
    now = timezone.now()
    due = subscriptions_due(now, since, site_id)
    if not due:
        return 0
    ids = {target: pk for pk, target in due}
    outcomes = client.subscribe_cov([target for _, target in due])
    record_outcomes(outcomes, ids, timezone.now())
    refused = sum(1 for o in outcomes if o.error)
    if refused:
        log.info("COV: %s of %s subscriptions not accepted (polled instead)", refused, len(due))
    return len(due)


def store_notifications(notes: Iterable[CovNotification], site_id: int | None = None) -> int:
    """Store a site's notifications as readings at their arrival (to 0.1 s; the latest
    of a point within one step), in one transaction. Returns the readings stored.
    Device instances repeat between sites: the worker's own site says whose they are."""
    buckets: dict[int, dict[tuple[int, str, int], CovNotification]] = defaultdict(dict)
    for note in notes:
        buckets[int(note.at / _BUCKET_S)][(note.device, note.object_type, note.instance)] = note
    if not buckets:
        return 0
    devices = {key[0] for bucket in buckets.values() for key in bucket}
    rows = BACnetPoint.objects.filter(
        device__site_id=site_id or default_site_id(), device__device_instance__in=devices
    ).values_list("id", "device__device_instance", "object_type", "object_instance", "state_texts")
    keys = {(device, otype, inst): pk for pk, device, otype, inst, _ in rows}
    texts = {pk: words for pk, _, _, _, words in rows if words}
    stored = 0
    with transaction.atomic():
        # Every step's points at once, in id order (the steps would lock them out of it).
        noted = {key for bucket in buckets.values() for key in bucket}
        lock_points_in_order([keys[key] for key in noted if key in keys])
        for step in sorted(buckets):
            at = datetime.fromtimestamp(step * _BUCKET_S, tz=UTC)
            results: dict[int, DeviceReadResult] = {}
            for (device, otype, inst), note in buckets[step].items():
                result = results.setdefault(device, DeviceReadResult(instance=device))
                result.values.append(
                    PointValue(otype, inst, note.value, note.text, note.status_flags)
                )
            stored += store_readings(results.values(), keys, at, texts).readings
    return stored


class CovKeeper(threading.Thread):
    """The BACnet worker's COV thread: stores notifications. A second thread of its own
    keeps subscriptions up (subscribing thousands of points takes a while: the
    notifications must not wait for it)."""

    def __init__(
        self, client_of: Callable[[], Any], site_id: int | None = None, worker_name: str = ""
    ) -> None:
        from discovery.services.alarm_events import EventStore

        super().__init__(name="bacnet-cov", daemon=True)
        self.events = EventStore(site_id, worker_name)
        self.client_of = client_of
        self.site_id = site_id  # the worker's site: its LAN, its points
        self.stopped = threading.Event()
        self.alarms_lock = threading.Lock()
        self.since = timezone.now()
        self.pending: list[CovNotification] = []
        self.lost = 0

    def run(self) -> None:
        renewer = threading.Thread(target=self._renew_loop, name="bacnet-cov-renew", daemon=True)
        renewer.start()
        while not self.stopped.wait(settings.BACNET_COV_FLUSH_S):
            client = self.client_of()
            if client is None:
                continue
            self._step(self._flush_events, client)
            if self._step(self.flush, client):
                # A flag that arrived by COV is an alarm within a flush.
                self._step(self._sync_alarms, client)
        renewer.join(timeout=5)
        connection.close()

    def _renew_loop(self) -> None:
        every = min(5.0, max(0.5, settings.BACNET_COV_LIFETIME_S / 8))
        while not self.stopped.is_set():
            client = self.client_of()
            if client is not None:
                # Polled points' in-alarm flags are looked at on every round too.
                self._step(self._sync_alarms, client)
                self._step(lambda c: renew_subscriptions(c, self.since, self.site_id), client)
            self.stopped.wait(every)
        connection.close()

    def _sync_alarms(self, _client: Any) -> None:
        # Both threads write alarm rows (flags here, events in the flush thread): one at
        # a time, or they fight over the same rows.
        with self.alarms_lock:
            sync_alarms()

    def _flush_events(self, client: Any) -> Any:
        with self.alarms_lock:
            return self.events.flush(client)

    def _step(self, work: Callable[[Any], Any], client: Any) -> Any:
        try:
            return work(client)
        except (DatabaseError, InterfaceError) as exc:
            log.warning(
                "COV keeper: database unreachable (%s); %s COV and %s event notifications kept",
                exc,
                len(self.pending),
                len(self.events.pending),
            )
        except Exception:  # the threads must outlive any one failure
            log.exception("COV keeper step failed")
        finally:
            close_old_connections()
        return None

    def flush(self, client: Any) -> int:
        """Store what arrived (and what a database outage held back)."""
        notes, dropped = client.take_cov_notifications()
        self.pending += notes
        overflow = len(self.pending) - MAX_PENDING
        if overflow > 0:
            del self.pending[:overflow]
        if dropped or overflow > 0:
            self.lost += dropped + max(0, overflow)
            log.warning("COV: %s notifications dropped (buffers full)", self.lost)
        if not self.pending:
            return 0
        stored = store_notifications(self.pending, self.site_id)
        self.pending = []
        return stored

    def stop(self) -> None:
        self.stopped.set()


def kept_as(point: BACnetPoint) -> tuple[str, str]:
    """(keeping, where it comes from: "point", "rule" or "default") of one point."""
    if point.keeping:
        return point.keeping, "point"
    rule = KeepingRule.objects.filter(object_type=point.object_type).first()
    if rule is not None:
        return rule.keeping, "rule"
    return Keeping.POLLED, "default"
