import pytest

from bacnet_project.celery import app

BACNET_TASKS = [
    "discovery.tasks.discover_devices",
    "discovery.tasks.read_device_points",
    "discovery.tasks.discover_device_points",
    "discovery.tasks.read_point_value",
    "discovery.tasks.write_point_value",
    "discovery.tasks.read_priority_array",
]
DEFAULT_TASKS = [
    "discovery.tasks.calculate_hourly_stats",
    "discovery.tasks.calculate_daily_stats",
    "discovery.tasks.relinquish_due_overrides",
    # Alarm notices: never from the BACnet worker.
    "discovery.tasks.deliver_alert",
    "discovery.tasks.send_due_alerts",
]


def routed_queue(task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    return route["queue"].name


@pytest.mark.parametrize("task_name", BACNET_TASKS)
def test_bacnet_work_goes_to_the_bacnet_queue(task_name):
    assert routed_queue(task_name) == "bacnet"


@pytest.mark.parametrize("task_name", DEFAULT_TASKS)
def test_rollups_go_to_the_default_queue(task_name):
    assert routed_queue(task_name) == "default"


def test_any_other_task_goes_to_the_default_queue():
    assert routed_queue("discovery.tasks.something_new") == "default"


def test_bacnet_work_is_delivered_at_least_once():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit > conf.task_soft_time_limit > 0


def test_every_job_kind_has_a_task_routed_to_the_bacnet_queue():
    from discovery.backends import TASK_FOR_KIND
    from discovery.models import BACnetTask

    assert set(TASK_FOR_KIND) == set(BACnetTask.Kind.values)
    assert {routed_queue(name) for name in TASK_FOR_KIND.values()} == {"bacnet"}


@pytest.mark.parametrize("task_name", BACNET_TASKS)
def test_it_routes_a_sites_bacnet_work_to_the_sites_queue(task_name):
    assert app.amqp.router.route({}, task_name, kwargs={"site": "annex"})["queue"].name == (
        "bacnet.annex"
    )
    assert app.amqp.router.route({}, task_name, kwargs={"site": "default"})["queue"].name == (
        "bacnet"
    )


@pytest.mark.django_db
def test_it_installs_a_collection_schedule_for_each_new_site():
    from discovery.models import Site
    from discovery.windows import collection_period_s, collection_schedule

    annex = Site.objects.create(name="Annex", slug="annex", collect_interval_s=300)
    schedule = collection_schedule(annex)
    assert schedule.name == "Collect readings (annex)"
    assert '"site": "annex"' in schedule.kwargs
    assert collection_period_s(annex) == 300
    assert collection_schedule(Site.default()).name == "Collect readings"
