"""A real browser (Debian's chromium through Playwright) against a live server, a
database-backend BACnet worker process and a simulated BACnet site. Nothing is mocked.

Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection, connections

from discovery.jobs import request_job
from discovery.models import BACnetDevice, BACnetPoint, BACnetReading, BACnetTask
from tests.conftest import skip_or_fail
from tests.site_fixtures import start_site
from tests.timing import scaled
from tests.web.factories import DeviceFactory, TaskFactory, UserFactory
from tests.web.live import wait_for_streams_closed
from tests.worker_fixtures import ARTIFACTS, start_database_worker, wait_for_job, worker_env

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DEVICES, OBJECTS = 3, 5
UI_TIMEOUT_MS = int(scaled(30_000))


@pytest.fixture(scope="module")
def site():
    site = start_site(devices=DEVICES, objects=OBJECTS, vary=True)
    yield site
    site.stop()


@pytest.fixture
def worker(site, settings):
    # The live server runs in this process: it must hand jobs to the backend the
    # worker serves.
    settings.BACNET_BACKEND = "database"
    worker = start_database_worker(
        "browser-test@localhost", worker_env(site, BACNET_BACKEND="database")
    )
    yield worker
    worker.stop()


@pytest.fixture
def page(monkeypatch, settings) -> Iterator:
    if not Path(CHROMIUM).exists():
        skip_or_fail("needs Debian's chromium (apt-get install chromium)")
    # Short keep-alives: the server notices a closed page sooner.
    settings.BACNET_EVENTS_KEEPALIVE_S = 2.0
    # The browser keeps HTTP connections alive, and with them the live server's
    # persistent database connections, which would keep the test database from being
    # dropped: close each after its request instead.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test
    # makes between browser steps are still plain synchronous code. While that loop
    # runs, Django keeps this thread's connections per context, not per thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
        browser.close()
        # Close the test's own connections while the loop still runs, where they were
        # opened: after it stops they are out of Django's reach and would keep the test
        # database from being dropped.
        connections.close_all()
        playwright.stop()
        wait_for_streams_closed()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=True)


def test_it_discovers_the_site_from_the_browser_and_charts_a_point(live_server, site, worker, page):
    """GIVEN a simulated site, a BACnet worker and a logged-in operator
    WHEN they click Start Discovery
    THEN the job goes to completed and the devices appear without a reload, and a
    point's page draws its trend chart."""
    UserFactory(username="operator")
    page.goto(live_server.url + "/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct horse battery")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#start-discovery")
    screenshot(page, "1-empty-dashboard")
    assert page.locator("#devices tr[data-device-instance]").count() == 0

    # A reload would wipe this marker: it proves the page updated itself in place.
    page.evaluate("window.stillTheSamePage = true")
    page.click("#start-discovery")
    page.wait_for_selector("#discovery-feedback >> text=requested")
    job_id = page.locator("#discovery-feedback a").inner_text()
    page.wait_for_selector(f"#recent-jobs-table #job-{job_id}[data-status=completed]")
    page.wait_for_function(
        f"document.querySelectorAll('#devices tr[data-device-instance]').length >= {DEVICES}"
    )
    assert page.evaluate("window.stillTheSamePage") is True
    shown = set(page.locator("#devices tr[data-device-instance]").evaluate_all(
        "rows => rows.map(row => Number(row.dataset.deviceInstance))"
    ))  # fmt: skip
    assert {d["instance"] for d in site.devices} <= shown
    assert BACnetTask.objects.get(pk=job_id).kind == BACnetTask.Kind.DISCOVER
    screenshot(page, "2-discovered")

    # Two collection cycles give the chart a line to draw.
    for _ in range(2):
        collect = wait_for_job(request_job("collect").pk)
        assert collect.status == "completed", collect.error_message
        time.sleep(1.1)  # the next cycle gets a timestamp of its own
    assert BACnetReading.objects.exists()

    device = BACnetDevice.objects.get(device_instance=site.devices[0]["instance"])
    page.click(f"#devices tr[data-device-instance='{device.device_instance}'] a >> nth=1")
    page.wait_for_selector("#points tr[data-point-id]")
    screenshot(page, "3-device")
    point = (
        BACnetPoint.objects.filter(device=device, readings__value__isnull=False)
        .distinct()
        .order_by("pk")
        .first()
    )
    assert point is not None
    page.click(f"#points tr[data-point-id='{point.pk}'] a >> nth=0")
    page.wait_for_selector("#trend-chart.drawn canvas")
    assert int(page.get_attribute("#trend-chart", "data-points")) >= 2
    screenshot(page, "4-point-chart")

    # Editing a date makes the range custom.
    page.fill("#id_start", "2026-01-01T00:00")
    assert page.input_value("#id_range") == "custom"
    page.click("#range-form button[type=submit]")
    page.wait_for_selector("h2 >> text=Trend: Custom")
    page.wait_for_selector("#trend-chart.drawn")
    assert page.errors == []


def test_it_logs_in_and_out_in_the_browser(live_server, page):
    UserFactory(username="operator")
    page.goto(live_server.url + "/jobs/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct horse battery")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("h1 >> text=Jobs")
    assert page.url.endswith("/jobs/")
    page.click("header .logout button")
    page.wait_for_selector("#login-form")
    assert os.path.basename(page.url.rstrip("/")) in ("login", "")


def log_in(live_server, page, path: str = "/") -> None:
    UserFactory(username="operator")
    page.goto(live_server.url + path)
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct horse battery")
    page.click("#login-form button[type=submit]")


def test_it_falls_back_to_polling_without_event_source(live_server, page):
    page.add_init_script("delete window.EventSource")
    log_in(live_server, page, "/jobs/")
    page.wait_for_selector("body[data-live=polling]")
    job = TaskFactory(progress="queued by a test")
    page.wait_for_selector(f"#job-table #job-{job.pk}")
    assert page.locator(f"#job-{job.pk}").inner_text().count("queued by a test") == 1


def test_it_filters_devices_as_the_user_types(live_server, page):
    DeviceFactory(name="Boiler plant", vendor_name="Heatco")
    DeviceFactory(name="Chiller 2", vendor_name="Coolco")
    log_in(live_server, page)
    page.wait_for_selector("#devices tr[data-device-instance] >> nth=1")
    page.fill("#device-filter input[name=q]", "boil")
    page.wait_for_function(
        "document.querySelectorAll('#devices tr[data-device-instance]').length === 1"
    )
    assert "Boiler plant" in page.locator("#devices").inner_text()
    assert page.url.endswith("/?q=boil")


# A device's 1,000-character unbroken model string, as stored (its column keeps 255).
HOSTILE_MODEL = "M" * 255


def page_scrolls_sideways(page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )


def test_it_charts_a_binary_point_as_named_steps_in_the_site_zone_without_sideways_scroll(
    live_server, page
):
    """GIVEN a device with a 1,000-character model name and a fan status point
    WHEN the operator opens the main pages at 1,280 px and at 390 px
    THEN no page scrolls sideways, the zone is shown, and the fan is charted as steps
    between Off and On, its legend naming states, not averages."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.web.factories import PointFactory, ReadingFactory

    device = DeviceFactory(name="N" * 255, model_name=HOSTILE_MODEL, description="D" * 1000)
    fan = PointFactory(
        device=device,
        object_type="binary-input",
        name="Fan status " + "F" * 240,
        units="",
        state_texts=["Off", "On"],
        last_value=1.0,
        last_value_text="On",
    )
    now = timezone.now()
    for minutes in range(1, 41):
        ReadingFactory(
            point=fan, timestamp=now - timedelta(minutes=minutes), value=float(minutes // 10 % 2)
        )
    TaskFactory(progress="P" * 255, error_message="E" * 1000)
    log_in(live_server, page)
    page.wait_for_selector("#devices tr[data-device-instance]")
    assert page.locator("#time-zone").inner_text() == "Times in UTC"
    pages = ["/", f"/devices/{device.device_instance}/", "/points/", "/jobs/", f"/points/{fan.pk}/"]
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for path in pages:
            page.goto(live_server.url + path)
            page.wait_for_load_state("load")
            assert not page_scrolls_sideways(page), (width, path)
    screenshot(page, "5-hostile-390px")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + f"/points/{fan.pk}/")
    page.wait_for_selector("#trend-chart.drawn canvas")
    chart = page.locator("#trend-chart")
    assert chart.get_attribute("data-chart-kind") == "steps"
    assert chart.get_attribute("data-state-names") == "Off,On"
    legend = page.locator("#trend-chart .u-legend").inner_text()
    assert "state" in legend
    assert not {"average", "minimum", "maximum"} & set(legend.split())
    assert "(UTC)" in legend
    assert "times in UTC" in page.locator("#chart-status").inner_text()
    # Hovering shows the state's name in the legend, not a number.
    box = page.locator("#trend-chart .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    value = page.locator("#trend-chart .u-legend .u-series:nth-child(2) .u-value").inner_text()
    assert value in ("Off", "On"), value
    assert not page_scrolls_sideways(page)
    screenshot(page, "6-binary-steps")
    assert page.errors == []


def test_it_makes_one_job_of_a_double_click_and_cancels_it_from_the_dashboard(live_server, page):
    """No worker runs here, so the discovery stays pending: a double click on Start
    Discovery makes one job, and its Cancel button cancels it in place."""
    log_in(live_server, page)
    page.wait_for_selector("#start-discovery")
    page.dblclick("#start-discovery")
    page.wait_for_selector("#recent-jobs-table tr[data-job-id]")
    page.wait_for_timeout(1000)  # a second request, if any, lands meanwhile
    assert BACnetTask.objects.filter(kind=BACnetTask.Kind.DISCOVER).count() == 1
    job = BACnetTask.objects.get(kind=BACnetTask.Kind.DISCOVER)
    page.click(f"#job-{job.pk} [data-cancel-job]")
    page.wait_for_selector(f"#recent-jobs-table #job-{job.pk}[data-status=cancelled]")
    assert page.url.rstrip("/") == live_server.url
    job.refresh_from_db()
    assert job.status == BACnetTask.Status.CANCELLED
    assert page.errors == []
