"""factory_boy factories for the web and API tests."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from discovery.models import (
    BACnetDailyStat,
    BACnetDevice,
    BACnetHourlyStat,
    BACnetPoint,
    BACnetReading,
    BACnetTask,
    BACnetWorker,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"operator{n}")
    password = factory.django.Password("correct horse battery")


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BACnetDevice

    device_instance = factory.Sequence(lambda n: 1000 + n)
    address = factory.Sequence(lambda n: f"192.168.1.{n % 250 + 2}")
    name = factory.Sequence(lambda n: f"AHU-{n}")
    vendor_id = 15
    vendor_name = "Acme Controls"
    model_name = "AC-500"
    is_online = True


class PointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BACnetPoint

    device = factory.SubFactory(DeviceFactory)
    object_type = "analog-input"
    object_instance = factory.Sequence(lambda n: n)
    name = factory.Sequence(lambda n: f"Zone temperature {n}")
    units = "degreesCelsius"
    last_value = 21.5
    last_status_flags = 0
    last_read_at = factory.LazyFunction(timezone.now)


class ReadingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BACnetReading

    point = factory.SubFactory(PointFactory)
    timestamp = factory.Sequence(lambda n: timezone.now() - timedelta(minutes=n + 1))
    value = 20.0


class HourlyStatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BACnetHourlyStat

    point = factory.SubFactory(PointFactory)
    bucket_start = factory.Sequence(
        lambda n: timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=n + 1)
    )
    minimum = 19.0
    maximum = 23.0
    average = 21.0
    count = 60


class DailyStatFactory(HourlyStatFactory):
    class Meta:
        model = BACnetDailyStat

    bucket_start = factory.Sequence(
        lambda n: timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        - timedelta(days=n + 1)
    )


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BACnetTask

    kind = BACnetTask.Kind.DISCOVER
    status = BACnetTask.Status.PENDING


class WorkerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BACnetWorker

    name = factory.Sequence(lambda n: f"bacnet-worker-{n}@site")
    backend = "celery"
    hostname = "site-pc"
    last_heartbeat = factory.LazyFunction(timezone.now)
