"""Model rules hold in the database itself (run on PostgreSQL in CI)."""

import io

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from discovery.models import BACnetDevice, BACnetHourlyStat, BACnetPoint, BACnetReading

pytestmark = pytest.mark.django_db


def make_device(instance: int = 100, **kw) -> BACnetDevice:
    return BACnetDevice.objects.create(device_instance=instance, address="10.0.0.1", **kw)


@pytest.mark.postgres
def test_migrations_are_in_step_with_the_models():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.postgres
def test_a_device_instance_is_unique():
    make_device(100)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_device(100)


@pytest.mark.postgres
def test_a_device_instance_stays_in_the_bacnet_range():
    with pytest.raises(IntegrityError), transaction.atomic():
        make_device(4194303)


@pytest.mark.postgres
def test_a_point_is_unique_per_device_and_object_identifier():
    device = make_device()
    BACnetPoint.objects.create(device=device, object_type="analog-input", object_instance=1)
    other = make_device(101)
    BACnetPoint.objects.create(device=other, object_type="analog-input", object_instance=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        BACnetPoint.objects.create(device=device, object_type="analog-input", object_instance=1)


@pytest.mark.postgres
def test_a_reading_is_unique_per_point_and_time():
    point = BACnetPoint.objects.create(
        device=make_device(), object_type="analog-value", object_instance=2
    )
    now = timezone.now()
    BACnetReading.objects.create(point=point, timestamp=now, value=1.0)
    with pytest.raises(IntegrityError), transaction.atomic():
        BACnetReading.objects.create(point=point, timestamp=now, value=2.0)


@pytest.mark.postgres
def test_statistics_are_unique_per_point_and_bucket():
    point = BACnetPoint.objects.create(
        device=make_device(), object_type="analog-value", object_instance=2
    )
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    row = {"minimum": 1, "maximum": 2, "average": 1.5, "count": 2}
    BACnetHourlyStat.objects.create(point=point, bucket_start=hour, **row)
    with pytest.raises(IntegrityError), transaction.atomic():
        BACnetHourlyStat.objects.create(point=point, bucket_start=hour, **row)


def test_deleting_a_device_removes_its_points_and_readings():
    device = make_device()
    point = BACnetPoint.objects.create(device=device, object_type="binary-input", object_instance=1)
    BACnetReading.objects.create(point=point, timestamp=timezone.now(), value=1)
    device.delete()
    assert BACnetReading.objects.count() == 0
