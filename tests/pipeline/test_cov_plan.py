"""Which points collection polls and which subscriptions are due, by keeping and
subscription state (the database alone: no BACnet here)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from discovery.models import CovState, Keeping, KeepingRule
from discovery.services.collection import collection_plan
from discovery.services.cov import subscriptions_due
from tests.web.factories import DeviceFactory, PointFactory

pytestmark = pytest.mark.django_db


def _planned() -> set[int]:
    _, keys, _ = collection_plan()
    return set(keys.values())


def test_it_polls_every_point_that_has_no_working_subscription():
    now = timezone.now()
    lifetime = timedelta(seconds=settings.BACNET_COV_LIFETIME_S)
    device = DeviceFactory()
    polled = PointFactory(device=device)
    subscribed = PointFactory(
        device=device, keeping=Keeping.COV, cov_state=CovState.SUBSCRIBED, cov_renewed_at=now
    )
    lapsed = PointFactory(
        device=device,
        keeping=Keeping.COV,
        cov_state=CovState.SUBSCRIBED,
        cov_renewed_at=now - lifetime - timedelta(seconds=1),
    )
    refused = PointFactory(device=device, keeping=Keeping.COV, cov_state=CovState.REFUSED)
    silent = PointFactory(device=device, keeping=Keeping.COV, cov_state=CovState.NO_ANSWER)
    not_yet = PointFactory(device=device, keeping=Keeping.COV)
    assert _planned() == {polled.pk, lapsed.pk, refused.pk, silent.pk, not_yet.pk}
    assert subscribed.pk not in _planned()


def test_it_check_polls_a_cov_check_point_left_unheard():
    now = timezone.now()
    unheard = now - timedelta(seconds=settings.BACNET_COV_CHECK_S + 1)
    KeepingRule.objects.create(object_type="binary-input", keeping=Keeping.COV_CHECK)
    state = {"cov_state": CovState.SUBSCRIBED, "cov_renewed_at": now}
    heard = PointFactory(object_type="binary-input", last_read_at=now, **state)
    quiet = PointFactory(object_type="binary-input", last_read_at=unheard, **state)
    assert _planned() == {quiet.pk}
    assert heard.pk not in _planned()


def test_it_lets_a_point_of_its_own_override_the_rule():
    KeepingRule.objects.create(object_type="analog-input", keeping=Keeping.COV)
    state = {"cov_state": CovState.SUBSCRIBED, "cov_renewed_at": timezone.now()}
    by_rule = PointFactory(**state)
    own = PointFactory(keeping=Keeping.POLLED, **state)
    assert _planned() == {own.pk}
    assert by_rule.pk not in _planned()


def test_it_renews_at_half_the_lifetime_after_a_restart_and_retries_refusals_later():
    now = timezone.now()
    half = timedelta(seconds=settings.BACNET_COV_LIFETIME_S // 2 + 1)
    retry = timedelta(seconds=settings.BACNET_COV_RETRY_S + 1)
    since = now - timedelta(hours=5)  # the worker started long ago
    cov = {"keeping": Keeping.COV}
    fresh = PointFactory(cov_state=CovState.SUBSCRIBED, cov_renewed_at=now, **cov)
    old = PointFactory(cov_state=CovState.SUBSCRIBED, cov_renewed_at=now - half, **cov)
    new = PointFactory(**cov)
    refused_now = PointFactory(cov_state=CovState.REFUSED, cov_renewed_at=now - half, **cov)
    refused_long_ago = PointFactory(cov_state=CovState.REFUSED, cov_renewed_at=now - retry, **cov)
    offline = PointFactory(device=DeviceFactory(is_online=False), **cov)
    PointFactory()  # polled: never subscribed
    due = {pk for pk, _ in subscriptions_due(now, since)}
    assert due == {old.pk, new.pk, refused_long_ago.pk}
    assert not due & {fresh.pk, refused_now.pk, offline.pk}
    # A worker that has just started subscribes everything it did not subscribe itself.
    restarted = {pk for pk, _ in subscriptions_due(now, now + timedelta(seconds=1))}
    assert restarted == {fresh.pk, old.pk, new.pk, refused_now.pk, refused_long_ago.pk}
