"""How each point is kept (polled or change of value), on its page and in the API."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from discovery.models import CovState, Keeping, KeepingRule
from tests.web.factories import PointFactory


def test_it_shows_a_subscribed_point_and_when_it_was_last_renewed(logged_in, db):
    renewed = timezone.now() - timedelta(seconds=42)
    point = PointFactory(
        object_type="analog-input",
        keeping=Keeping.COV,
        cov_state=CovState.SUBSCRIBED,
        cov_renewed_at=renewed,
    )
    content = logged_in.get(reverse("discovery:point-detail", args=[point.pk])).content.decode()
    assert "Kept by: <strong>Change of value</strong>" in content
    assert "set on the point" in content
    assert "subscribed, last renewed" in content


def test_it_says_why_a_cov_point_is_polled_instead(logged_in, db):
    KeepingRule.objects.create(object_type="binary-input", keeping=Keeping.COV_CHECK)
    point = PointFactory(
        object_type="binary-input",
        cov_state=CovState.REFUSED,
        cov_renewed_at=timezone.now(),
        cov_note="device 7: subscribe-cov binary-input,1: services: cov-subscription-failed",
    )
    content = logged_in.get(reverse("discovery:point-detail", args=[point.pk])).content.decode()
    assert "Change of value, with a slow check poll" in content
    assert "the object type&#x27;s rule" in content
    assert "Refused by the device (polled)" in content
    assert "cov-subscription-failed" in content


def test_it_shows_polled_points_as_polled(logged_in, db):
    point = PointFactory(object_type="analog-value")
    content = logged_in.get(reverse("discovery:point-detail", args=[point.pk])).content.decode()
    assert "Kept by: <strong>Polled</strong>" in content
    assert "renewed" not in content


def test_it_gives_keeping_and_subscription_in_the_api(api, db):
    KeepingRule.objects.create(object_type="analog-input", keeping=Keeping.COV)
    renewed = timezone.now()
    by_rule = PointFactory(
        object_type="analog-input", cov_state=CovState.SUBSCRIBED, cov_renewed_at=renewed
    )
    polled = PointFactory(object_type="analog-input", keeping=Keeping.POLLED)
    rows = {row["id"]: row for row in api.get("/api/points/").json()["results"]}
    assert rows[by_rule.pk]["keeping"] == ""
    assert rows[by_rule.pk]["kept_as"] == "cov"
    assert rows[by_rule.pk]["cov_state"] == "subscribed"
    assert rows[by_rule.pk]["cov_renewed_at"] is not None
    assert rows[polled.pk]["kept_as"] == "polled"
    assert rows[polled.pk]["cov_state"] == ""
