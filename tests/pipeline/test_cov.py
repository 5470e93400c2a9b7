"""Change of value end to end: a real BACnet worker (both backends) subscribes to
simulated devices over UDP, stores their notifications as readings, renews, resubscribes
after a restart and falls back to polling where a device refuses. Nothing is mocked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from discovery.jobs import request_job
from discovery.models import BACnetPoint, BACnetReading, CovState, Keeping, KeepingRule
from discovery.services.collection import collection_plan
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.worker_fixtures import (
    start_celery_worker,
    start_database_worker,
    wait_for_job,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Renewed at half the lifetime. Scaled: a loaded machine may delay a renewal by seconds,
# and the lifetime is what the test promises the renewal beats.
LIFETIME_S = round(scaled(6))
COV_ENV = {"BACNET_COV_LIFETIME_S": str(LIFETIME_S), "BACNET_COV_FLUSH_S": "0.2"}


@pytest.fixture(scope="module")
def site():
    # Two normal devices (COV reported) and the fault devices: no-rpm refuses COV.
    site = start_site(devices=2, objects=6, faults=True, vary=True)
    yield site
    site.stop()


def _discover(backend: str) -> None:
    task = wait_for_job(request_job("discover", backend=backend).pk, scaled(90))
    assert task.status == "completed", task.error_message


def _cov_points(site) -> tuple[list[BACnetPoint], BACnetPoint]:
    """Every analog input of the normal devices kept by COV through the object type's
    rule; one point of the no-rpm device by its own setting."""
    KeepingRule.objects.create(object_type="analog-input", keeping=Keeping.COV)
    normal = [d["instance"] for d in site.normal_devices]
    analog = list(
        BACnetPoint.objects.filter(device__device_instance__in=normal, object_type="analog-input")
    )
    assert analog
    refused = BACnetPoint.objects.filter(
        device__device_instance=site.device("no-rpm")["instance"]
    ).first()
    assert refused is not None
    refused.keeping = Keeping.COV_CHECK
    refused.save(update_fields=["keeping"])
    return analog, refused


def _subscribed(points: list[BACnetPoint]) -> bool:
    pks = [p.pk for p in points]
    return BACnetPoint.objects.filter(pk__in=pks, cov_state=CovState.SUBSCRIBED).count() == len(pks)


def _check_cov_flow(site, backend: str) -> None:
    analog, refused = _cov_points(site)
    pks = [p.pk for p in analog]
    wait_until(lambda: _subscribed(analog), scaled(15), "COV subscriptions")

    # Stored as they arrive, without any collection: irregular, recent readings.
    def recent() -> int:
        since = timezone.now() - timedelta(seconds=scaled(1))
        return BACnetReading.objects.filter(point_id__in=pks, timestamp__gte=since).count()

    wait_until(lambda: recent() >= len(pks), scaled(10), "readings within a second")

    def busiest() -> list:
        for pk in pks:
            rows = BACnetReading.objects.filter(point_id=pk).order_by("timestamp")
            stamps = list(rows.values_list("timestamp", flat=True))
            if len(stamps) >= 3:
                return stamps
        return []

    stamps = wait_until(busiest, scaled(10), "a point's changes stored")
    assert any(s.microsecond for s in stamps)  # arrival times, not whole-second cycles

    # Batched: more readings than transactions (PostgreSQL's xmin names the writer). A
    # starved machine may deliver one notification per flush for a while: wait for a
    # flush that held several.
    def batched() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), count(DISTINCT xmin::text) FROM discovery_bacnetreading "
                "WHERE point_id = ANY(%s)",
                [pks],
            )
            readings, transactions = cursor.fetchone()
        return readings > transactions > 0

    wait_until(batched, scaled(10), "a flush of several notifications")

    # The refusal is said on the point, and the point is polled instead.
    wait_until(
        lambda: BACnetPoint.objects.get(pk=refused.pk).cov_state == CovState.REFUSED,
        scaled(15),
        "the refusal recorded",
    )
    refused.refresh_from_db()
    assert "cov-subscription-failed" in refused.cov_note
    cycle = wait_for_job(request_job("collect", backend=backend).pk, scaled(60))
    assert cycle.status == "completed", cycle.error_message
    polled = set(
        BACnetReading.objects.filter(timestamp=cycle.result["cycle_at"]).values_list(
            "point_id", flat=True
        )
    )
    assert refused.pk in polled
    # Subscribed points are not polled (their readings may share a cycle's second: a
    # device answers each renewal with a notification).
    _, planned, _ = collection_plan()
    assert refused.pk in planned.values()
    assert not set(planned.values()) & set(pks)

    # Renewed before the lifetime ends, and notifications keep coming.
    renewed = {p.pk: p.cov_renewed_at for p in BACnetPoint.objects.filter(pk__in=pks)}

    def all_renewed() -> bool:
        now = BACnetPoint.objects.filter(pk__in=pks).values_list("pk", "cov_renewed_at")
        return all(at > renewed[pk] for pk, at in now)

    wait_until(all_renewed, scaled(LIFETIME_S), "renewals before the lifetime ends")
    for point in BACnetPoint.objects.filter(pk__in=pks):
        assert point.cov_renewed_at - renewed[point.pk] < timedelta(seconds=LIFETIME_S)
    wait_until(lambda: recent() >= len(pks), scaled(2 * LIFETIME_S), "readings after renewal")


def test_it_keeps_cov_points_with_the_database_worker(site) -> None:
    env = worker_env(site, BACNET_BACKEND="database", **COV_ENV)
    worker = start_database_worker("bacnet-cov-db", env, "--no-schedule")
    try:
        _discover("database")
        _check_cov_flow(site, "database")
    finally:
        worker.stop()

    # A restarted worker subscribes everything again at once.
    restarted = timezone.now()
    worker = start_database_worker("bacnet-cov-db", env, "--no-schedule")
    try:
        analog = list(BACnetPoint.objects.filter(cov_state=CovState.SUBSCRIBED))
        assert analog

        def resubscribed() -> bool:
            rows = BACnetPoint.objects.filter(pk__in=[p.pk for p in analog])
            return all(
                p.cov_renewed_at > restarted and p.cov_state == CovState.SUBSCRIBED for p in rows
            )

        wait_until(resubscribed, scaled(10), "resubscription after a worker restart")
    finally:
        worker.stop()


def test_it_keeps_cov_points_with_the_celery_worker(site, redis_url) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = worker_env(site, REDIS_URL=redis_url, BACNET_BACKEND="celery", **COV_ENV)
    worker = start_celery_worker("bacnet-cov@localhost", "bacnet", env)
    try:
        _discover("celery")
        # Between tasks the solo worker waits on the broker; notifications still land.
        _check_cov_flow(site, "celery")
    finally:
        worker.stop()


def _free_ports(count: int) -> int:
    """A base port with ``count`` consecutive free ports after it (retrying a few)."""
    import socket

    from tests.site_fixtures import free_udp_port

    def free(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    for _ in range(10):
        base = free_udp_port()
        if all(free(base + k) for k in range(count)):
            return base
    raise AssertionError("no consecutive free UDP ports")


def test_it_resubscribes_after_a_device_restart() -> None:
    """GIVEN a point kept by COV on a device that then restarts (same address, no
    subscriptions any more) WHEN its subscription comes up for renewal THEN the worker
    subscribes again and the device's changes are stored again."""
    from tests.site_fixtures import start_site_with_args

    base = _free_ports(2)
    args = [
        "--devices=1",
        "--objects=4",
        "--vary",
        f"--bbmd-port={base}",
        f"--base-port={base + 1}",
    ]
    first = start_site_with_args(args)
    env = worker_env(first, BACNET_BACKEND="database", **COV_ENV)
    worker = start_database_worker("bacnet-cov-restart", env, "--no-schedule")
    try:
        _discover("database")
        point = BACnetPoint.objects.get(
            device__device_instance=first.devices[0]["instance"], object_type="analog-input"
        )
        point.keeping = Keeping.COV
        point.save(update_fields=["keeping"])
        wait_until(
            lambda: BACnetReading.objects.filter(point=point).count() >= 2,
            scaled(15),
            "COV readings",
        )
        first.stop()
        restarted = timezone.now()
        second = start_site_with_args(args)
        try:

            def heard_again() -> bool:
                return BACnetReading.objects.filter(point=point, timestamp__gt=restarted).exists()

            wait_until(heard_again, scaled(3 * LIFETIME_S), "readings after the device restart")
            point.refresh_from_db()
            assert point.cov_state == CovState.SUBSCRIBED
            assert point.cov_renewed_at > restarted
        finally:
            second.stop()
    finally:
        worker.stop()


def test_it_raises_acknowledges_and_clears_an_alarm_that_arrives_by_cov() -> None:
    """GIVEN a device whose analog input 1 goes out of range half of every 20 s (its
    in-alarm flag set) and that point kept by COV WHEN it leaves its limit THEN an
    alarm appears without any poll; it is acknowledged; it clears when the value is
    back in range."""
    from django.contrib.auth import get_user_model

    from discovery.models import Alarm
    from discovery.services.alarms import acknowledge
    from tests.site_fixtures import start_site_with_args

    site = start_site_with_args(
        ["--devices=1", "--objects=4", "--vary", "--alarms", "--bbmd-port=0", "--base-port=0"]
    )
    env = worker_env(site, BACNET_BACKEND="database", **COV_ENV)
    worker = start_database_worker("bacnet-cov-alarms", env, "--no-schedule")
    try:
        _discover("database")
        point = BACnetPoint.objects.get(
            device__device_instance=site.devices[0]["instance"],
            object_type="analog-input",
            object_instance=1,
        )
        point.keeping = Keeping.COV
        point.save(update_fields=["keeping"])
        alarm = wait_until(
            lambda: Alarm.objects.filter(point=point, cleared_at__isnull=True).first(),
            scaled(30),
            "an alarm raised by a COV notification",
        )
        from django.contrib.auth.models import Permission

        operator = get_user_model().objects.create_user("operator")
        # Acknowledging is a write: the commanding permission.
        operator.user_permissions.add(Permission.objects.get(codename="command_point"))
        operator = get_user_model().objects.get(pk=operator.pk)
        assert acknowledge(alarm, operator)
        wait_until(
            lambda: Alarm.objects.filter(pk=alarm.pk, cleared_at__isnull=False).exists(),
            scaled(20),
            "the alarm cleared",
        )
        alarm.refresh_from_db()
        assert alarm.acknowledged_by == operator
        assert alarm.cleared_at > alarm.raised_at
        # Raised at the notification's arrival (0.1 s steps), not at a poll's whole second.
        in_alarm = BACnetReading.objects.filter(point=point, status_flags=1).order_by("timestamp")
        assert in_alarm.exists()
    finally:
        worker.stop()
        site.stop()
