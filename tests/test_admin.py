import pytest
from django.urls import reverse
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

pytestmark = pytest.mark.django_db
MODELS = [
    BACnetDevice,
    BACnetPoint,
    BACnetReading,
    BACnetHourlyStat,
    BACnetDailyStat,
    BACnetTask,
    BACnetWorker,
]


@pytest.fixture
def some_rows():
    device = BACnetDevice.objects.create(device_instance=7, address="10.0.0.7", name="AHU-1")
    point = BACnetPoint.objects.create(device=device, object_type="analog-input", object_instance=1)
    now = timezone.now()
    BACnetReading.objects.create(point=point, timestamp=now, value=21.5)
    BACnetHourlyStat.objects.create(
        point=point, bucket_start=now, minimum=1, maximum=2, average=1.5, count=2
    )
    BACnetDailyStat.objects.create(
        point=point, bucket_start=now, minimum=1, maximum=2, average=1.5, count=2
    )
    BACnetTask.objects.create(kind=BACnetTask.Kind.DISCOVER)
    BACnetWorker.objects.create(name="bacnet@host", backend="celery")


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_admin_list_and_change_pages_load(admin_client, some_rows, model):
    meta = model._meta
    listing = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert listing.status_code == 200
    obj = model.objects.first()
    change = admin_client.get(
        reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    )
    assert change.status_code == 200


def test_the_admin_asks_for_a_login(client):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_it_names_the_models_as_engineers_write_bacnet(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "BACnet devices" in html
    assert "BACnet jobs" in html
    assert "Ba cnet" not in html
