"""Alarm notices by webhook and e-mail: recorded with the alarm, signed, retried while a
failure may pass, never sent twice; through a real Celery worker on ``default`` and the
database backend's sender. Real HTTP and SMTP servers on 127.0.0.1 receive them."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from discovery.models import Alarm, AlarmEvent, AlertDelivery, AlertRule, Site, StatusFlags
from discovery.services.alarms import acknowledge, sync_alarms
from discovery.services.alerts import (
    deliver,
    queue_missed_events,
    resend_failed,
    send_due_alerts,
)
from tests.alert_fixtures import SmtpServer, WebhookServer, closed_port_url, smtp_server, webhook
from tests.timing import scaled
from tests.web.factories import DeviceFactory, PointFactory, UserFactory
from tests.worker_fixtures import spawn, start_celery_worker, wait_until, worker_env

__all__ = ["smtp_server", "webhook"]  # fixtures
SECRET = "a-shared-secret-of-some-length"
Status = AlertDelivery.Status


def _rule(**fields: Any) -> AlertRule:
    rule = AlertRule(name=fields.pop("name", "Operators"), **fields)
    if rule.webhook_url and not rule.webhook_secret:
        rule.webhook_secret = SECRET
    rule.full_clean()
    rule.save()
    return rule


def _in_alarm(point: Any) -> Alarm:
    point.last_status_flags = StatusFlags.IN_ALARM
    point.last_read_at = timezone.now()
    point.save(update_fields=["last_status_flags", "last_read_at"])
    sync_alarms()
    return Alarm.objects.get(point=point, cleared_at__isnull=True)


def _valid_signature(received: Any, secret: str = SECRET) -> bool:
    expected = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers["X-BACnet-Signature"], f"sha256={expected}")


def test_it_records_one_delivery_per_matching_rule_and_channel(db: Any, settings: Any) -> None:
    settings.BACNET_BACKEND = "database"
    annex = Site.objects.create(name="Annex", slug="annex")
    both = _rule(webhook_url="http://127.0.0.1:9/hook", email_recipients=["ops@example.com"])
    _rule(name="Annex only", site=annex, email_recipients=["annex@example.com"])
    _rule(name="Off", enabled=False, email_recipients=["off@example.com"])
    _rule(name="Binary only", object_type="binary-input", email_recipients=["b@example.com"])
    _rule(name="Urgent only", priority_at_most=64, email_recipients=["u@example.com"])
    point = PointFactory()
    alarm = _in_alarm(point)
    rows = AlertDelivery.objects.filter(alarm=alarm)
    assert sorted(rows.values_list("rule__name", "channel")) == [
        (both.name, "email"),
        (both.name, "webhook"),
    ]
    assert set(rows.values_list("status", "event")) == {(Status.PENDING, AlarmEvent.RAISED)}
    sync_alarms()  # the alarm is still open: nothing new
    assert queue_missed_events() == 0
    assert AlertDelivery.objects.count() == 2


def test_it_posts_signed_json_once_and_records_it(db: Any, webhook: WebhookServer) -> None:
    _rule(webhook_url=webhook.url)
    alarm = _in_alarm(PointFactory(name="Supply fan trip"))
    delivery = AlertDelivery.objects.get(alarm=alarm)
    assert deliver(delivery.pk).status == Status.DELIVERED
    [received] = webhook.received
    assert _valid_signature(received)
    assert not _valid_signature(received, "another-secret-entirely")
    assert received.headers["X-BACnet-Timestamp"] == str(received.json["timestamp"])
    assert received.headers["X-BACnet-Delivery"] == str(delivery.pk)
    assert received.headers["Content-Type"] == "application/json"
    body = received.json
    assert body["event"] == "raised" and body["alarm"]["id"] == alarm.pk
    assert body["point"]["name"] == "Supply fan trip"
    assert body["device"]["instance"] == alarm.point.device.device_instance
    delivery.refresh_from_db()
    assert delivery.status == Status.DELIVERED and delivery.attempts == 1
    assert delivery.delivered_at is not None
    # A duplicated task, or the sweeper, finds it delivered: nothing is sent again.
    assert deliver(delivery.pk).status == "skipped"
    assert send_due_alerts()["delivered"] == 0
    assert len(webhook.received) == 1


def test_it_sends_the_email_through_djangos_smtp_backend(
    db: Any, smtp_server: SmtpServer, settings: Any
) -> None:
    # pytest-django swaps in the in-memory backend: the product's own is SMTP.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_server.port
    settings.DEFAULT_FROM_EMAIL = "monitor@example.com"
    _rule(email_recipients=["ops@example.com", "chief@example.com"])
    alarm = _in_alarm(PointFactory(name="Boiler high temp"))
    delivery = AlertDelivery.objects.get(alarm=alarm)
    assert deliver(delivery.pk).status == Status.DELIVERED
    [mail] = smtp_server.mailbox.messages
    assert mail["from"] == "monitor@example.com"
    assert sorted(mail["to"]) == ["chief@example.com", "ops@example.com"]
    assert "Subject: [BACnet] Alarm raised:" in mail["text"]
    assert "Boiler high temp" in mail["text"]
    assert f"X-BACnet-Delivery: {delivery.pk}" in mail["text"]


def test_a_refused_address_fails_at_once_and_a_missing_mail_server_is_retried(
    db: Any, smtp_server: SmtpServer, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_server.port
    _rule(email_recipients=["nobody@example.com"])
    alarm = _in_alarm(PointFactory())
    row = AlertDelivery.objects.get(alarm=alarm)
    assert deliver(row.pk).status == Status.FAILED
    row.refresh_from_db()
    assert "nobody@example.com (550)" in row.last_error and row.attempts == 1
    # An operator fixes the address and sends it again (the admin's action).
    AlertRule.objects.update(email_recipients=["ops@example.com"])
    assert resend_failed([row.pk]) == 1
    assert deliver(row.pk).status == Status.DELIVERED
    assert smtp_server.mailbox.messages[0]["to"] == ["ops@example.com"]
    # No mail server listening: tried again later.
    settings.EMAIL_PORT = int(closed_port_url().rsplit(":", 1)[1].split("/")[0])
    other = AlertDelivery.objects.get(alarm=_in_alarm(PointFactory()))
    assert deliver(other.pk).status == Status.RETRYING
    other.refresh_from_db()
    assert "Mail server 127.0.0.1" in other.last_error and "refused" in other.last_error


def test_it_retries_a_refused_connection_a_timeout_and_a_503_but_not_a_400(
    db: Any, webhook: WebhookServer, settings: Any
) -> None:
    settings.ALERT_RETRY_BACKOFF_S = 30
    settings.ALERT_WEBHOOK_TIMEOUT_S = 0.5
    refused = _rule(name="Nobody there", webhook_url=closed_port_url())
    alarm = _in_alarm(PointFactory())
    outcome = deliver(AlertDelivery.objects.get(rule=refused).pk)
    assert outcome.status == Status.RETRYING and outcome.retry_in_s == 30
    row = AlertDelivery.objects.get(rule=refused)
    assert "Could not reach" in row.last_error and row.attempts == 1
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=20)
    assert deliver(row.pk).status == "skipped"  # not due yet

    def one_try(statuses: list[int], delay_s: float = 0.0) -> AlertDelivery:
        webhook.statuses, webhook.delay_s = statuses, delay_s
        rule = _rule(name=f"Hook {statuses}{delay_s}", webhook_url=webhook.url)
        row = AlertDelivery.objects.create(
            rule=rule, alarm=alarm, event="raised", channel="webhook"
        )
        deliver(row.pk)
        return AlertDelivery.objects.get(pk=row.pk)

    slow = one_try([200], delay_s=2)
    assert slow.status == Status.RETRYING and "timed out" in slow.last_error
    busy = one_try([503])
    assert busy.status == Status.RETRYING and "HTTP 503" in busy.last_error
    refused_for_good = one_try([400])
    assert refused_for_good.status == Status.FAILED and refused_for_good.attempts == 1
    assert "HTTP 400" in refused_for_good.last_error
    # Out of attempts: failed for good, saying so.
    settings.ALERT_MAX_ATTEMPTS = 1
    last = one_try([503])
    assert last.status == Status.FAILED and "gave up after 1 attempts" in last.last_error


def test_it_tells_of_returns_to_normal_and_acknowledgements_only_when_asked(
    db: Any, settings: Any
) -> None:
    settings.BACNET_BACKEND = "database"
    point = PointFactory()
    before = _in_alarm(PointFactory())  # raised before the rules existed
    everything = _rule(
        name="All events", on_clear=True, on_acknowledge=True, email_recipients=["a@example.com"]
    )
    raised_only = _rule(name="Raised only", email_recipients=["r@example.com"])
    alarm = _in_alarm(point)
    operator = UserFactory()  # acknowledging is a write: the command permission
    operator.user_permissions.add(Permission.objects.get(codename="command_point"))
    acknowledge(alarm, operator)
    point.last_status_flags = 0
    point.last_read_at = timezone.now()
    point.save(update_fields=["last_status_flags", "last_read_at"])
    sync_alarms()
    assert queue_missed_events() == 2
    assert queue_missed_events() == 0
    events = set(AlertDelivery.objects.values_list("rule__name", "event"))
    assert events == {
        (everything.name, "raised"),
        (everything.name, "acknowledged"),
        (everything.name, "cleared"),
        (raised_only.name, "raised"),
    }
    assert not AlertDelivery.objects.filter(alarm=before).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_default_queue_worker_retries_a_503_refuses_a_400_and_delivers_once(
    redis_url: str, settings: Any, webhook: WebhookServer, smtp_server: SmtpServer
) -> None:
    """GIVEN a Celery worker on ``default`` (Redis), a hook that answers 503 once, a hook
    that answers 400, and an e-mail rule
    WHEN a point goes into alarm (the BACnet worker's ``sync_alarms``)
    THEN the first hook gets it on the second try, the second once and no more, the
    e-mail once; sending the tasks again delivers nothing twice."""
    import redis

    from bacnet_project.celery import app

    redis.Redis.from_url(redis_url).flushdb()
    settings.BACNET_BACKEND = "celery"
    env = worker_env(
        REDIS_URL=redis_url,
        BACNET_BACKEND="celery",
        ALERT_RETRY_BACKOFF_S="0.5",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_server.port),
    )
    worker = start_celery_worker("alerts@localhost", "default", env)
    try:
        refusing = WebhookServer(statuses=[400]).start()
        webhook.statuses = [503]
        _rule(name="Busy hook", webhook_url=webhook.url)
        _rule(name="Refusing hook", webhook_url=refusing.url)
        _rule(name="Mail", email_recipients=["ops@example.com"])
        alarm = _in_alarm(PointFactory(device=DeviceFactory()))
        rows = AlertDelivery.objects.filter(alarm=alarm)

        def settled() -> bool:
            return not rows.exclude(status__in=[Status.DELIVERED, Status.FAILED]).exists()

        wait_until(settled, scaled(10), "every notice delivered or failed")
        by_rule = {row.rule.name: row for row in rows.select_related("rule")}
        assert by_rule["Busy hook"].status == Status.DELIVERED
        assert by_rule["Busy hook"].attempts == 2
        assert "HTTP 503" not in by_rule["Busy hook"].last_error  # cleared on success
        assert by_rule["Refusing hook"].status == Status.FAILED
        assert by_rule["Refusing hook"].attempts == 1
        assert by_rule["Mail"].status == Status.DELIVERED
        assert len(webhook.received) == 2 and all(map(_valid_signature, webhook.received))
        assert {r.headers["X-BACnet-Delivery"] for r in webhook.received} == {
            str(by_rule["Busy hook"].pk)
        }
        # Duplicated messages (a redelivery, a second send) find every row settled.
        done = worker.log().count("succeeded in")
        for row in rows:
            app.send_task("discovery.tasks.deliver_alert", args=[row.pk])
        wait_until(
            lambda: worker.log().count("succeeded in") >= done + 3, scaled(10), "duplicates ran"
        )
        assert worker.log().count("'skipped'") == 3
        assert len(webhook.received) == 2
        assert len(refusing.received) == 1
        assert len(smtp_server.mailbox.messages) == 1
        refusing.stop()
    finally:
        worker.stop()
    log = worker.log()
    assert "Retry in" in log and "HTTP 400" in log


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_database_backend_sends_notices_from_manage_py_send_alerts(
    settings: Any, webhook: WebhookServer, smtp_server: SmtpServer
) -> None:
    settings.BACNET_BACKEND = "database"
    env = worker_env(
        BACNET_BACKEND="database",
        ALERT_RETRY_BACKOFF_S="0.5",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_server.port),
    )
    sender = spawn("alert-sender", [sys.executable, "manage.py", "send_alerts"], env)
    try:
        sender.wait_for_log("Alarm notice sender ready", scaled(30))
        webhook.statuses = [503]
        _rule(name="Hook", webhook_url=webhook.url, email_recipients=["ops@example.com"])
        alarm = _in_alarm(PointFactory())
        rows = AlertDelivery.objects.filter(alarm=alarm)
        wait_until(
            lambda: rows.filter(status=Status.DELIVERED).count() == 2, scaled(10), "both delivered"
        )
        assert len(webhook.wait_for(2)) == 2  # a 503, then delivered on the retry
        assert rows.get(channel="webhook").attempts == 2
        assert len(smtp_server.mailbox.wait_for(1)) == 1
        assert json.loads(webhook.received[-1].body)["alarm"]["id"] == alarm.pk
    finally:
        assert sender.stop() == 0
    assert "Alarm notice sender stopped" in sender.log()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_alarm_from_a_simulated_device_reaches_the_webhook_from_the_default_worker(
    redis_url: str, settings: Any, webhook: WebhookServer
) -> None:
    """GIVEN a simulated device whose analog input 1 leaves its limits every 20 s, kept
    by COV by the BACnet worker (queue ``bacnet``), a worker on ``default`` and a webhook
    rule WHEN the point goes into alarm THEN the webhook gets the signed notice, sent by
    the ``default`` worker and never by the BACnet worker."""
    import redis

    from discovery.jobs import request_job
    from discovery.models import BACnetPoint, Keeping
    from tests.site_fixtures import start_site_with_args
    from tests.worker_fixtures import wait_for_job

    redis.Redis.from_url(redis_url).flushdb()
    settings.BACNET_BACKEND = "celery"
    site = start_site_with_args(
        ["--devices=1", "--objects=4", "--vary", "--alarms", "--bbmd-port=0", "--base-port=0"]
    )
    env = worker_env(site, REDIS_URL=redis_url, BACNET_BACKEND="celery", BACNET_COV_FLUSH_S="0.2")
    bacnet = start_celery_worker("bacnet-alarms@localhost", "bacnet", env)
    default = start_celery_worker("default-alarms@localhost", "default", env)
    try:
        _rule(name="Plant room", webhook_url=webhook.url, object_type="analog-input")
        task = wait_for_job(request_job("discover", backend="celery").pk, scaled(90))
        assert task.status == "completed", task.error_message
        point = BACnetPoint.objects.get(
            device__device_instance=site.devices[0]["instance"],
            object_type="analog-input",
            object_instance=1,
        )
        point.keeping = Keeping.COV
        point.save(update_fields=["keeping"])
        [received] = webhook.wait_for(1, scaled(10))  # scaled inside
        assert _valid_signature(received)
        assert received.json["point"]["id"] == point.pk
        assert received.json["event"] == "raised"
        # Recorded once the receiver's answer is back (just after it got the request).
        wait_until(
            lambda: AlertDelivery.objects.get(alarm__point=point).status == Status.DELIVERED,
            scaled(5),
            "the notice recorded as delivered",
        )
    finally:
        default.stop()
        bacnet.stop()
        site.stop()
    assert "deliver_alert[" in default.log()
    assert "deliver_alert" not in bacnet.log().replace(". discovery.tasks.deliver_alert", "")
