"""Default beat schedules: installed on migrate, once, and left alone once edited."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from discovery.schedules import DEFAULT_ENTRIES, install_default_schedules

pytestmark = pytest.mark.django_db


def test_migrate_installs_the_default_schedules_with_expiry():
    tasks = {t.name: t for t in PeriodicTask.objects.filter(name__in=DEFAULT_ENTRIES)}
    assert set(tasks) == set(DEFAULT_ENTRIES)
    collect = tasks["Collect readings"]
    assert collect.task == "discovery.tasks.read_device_points"
    assert collect.interval.every == 60 and collect.expire_seconds == 60
    assert tasks["Hourly statistics"].crontab.minute == "5"


def test_installing_again_changes_nothing_a_user_edited():
    PeriodicTask.objects.filter(name="Collect readings").update(enabled=False)
    assert install_default_schedules() == []
    call_command("migrate", verbosity=0)
    assert PeriodicTask.objects.filter(name__in=DEFAULT_ENTRIES).count() == len(DEFAULT_ENTRIES)
    assert not PeriodicTask.objects.get(name="Collect readings").enabled
