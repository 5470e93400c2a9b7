"""The BACnet worker's side of the alarm jobs: AcknowledgeAlarm sent for an alarm
acknowledged in the product, the worker added to a device's recipient lists, devices
polled for their event states. Each ends its audit row (``PointCommand``) with what the
device answered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone

from discovery.bacnet_types import AlarmAck, BACnetError, RecipientEntry
from discovery.command_models import PointCommand
from discovery.models import Alarm, BACnetDevice, BACnetTask
from discovery.services.alarm_events import poll_devices


def run_job(client: Any, task: BACnetTask, progress: Callable[[str], None]) -> dict[str, Any]:
    """The worker's side of the alarm jobs (``BACnetTask.Kind``)."""
    params = task.parameters or {}
    if task.kind == BACnetTask.Kind.POLL_EVENTS:
        ids = params.get("device_ids") or []
        devices = list(BACnetDevice.objects.filter(site=task.site, pk__in=ids))
        progress(f"Asking {len(devices)} device(s) for their event states")
        return poll_devices(client, devices)
    command = PointCommand.objects.select_related("alarm__point__device").get(
        pk=params["command_id"]
    )
    if task.kind == BACnetTask.Kind.ACK_ALARM:
        return _send_ack(client, command, progress)
    return _register(client, command, params, progress)


def _finish(command: PointCommand, result: str, message: str) -> None:
    PointCommand.objects.filter(pk=command.pk).update(
        result=result, message=message[:2000], finished_at=timezone.now()
    )


def _send_ack(client: Any, command: PointCommand, progress: Callable[[str], None]) -> dict:
    alarm = command.alarm
    if alarm is None:
        _finish(command, PointCommand.Result.FAILED, "the alarm is gone")
        return {"acknowledged": False}
    point, device = alarm.point, alarm.point.device
    progress(f"AcknowledgeAlarm of {point.object_type},{point.object_instance} on {device}")
    ack = AlarmAck(
        device=device.device_instance,
        address=device.address,
        object_type=point.object_type,
        instance=point.object_instance,
        event_state=alarm.event_state or "offnormal",
        event_stamp=alarm.event_stamp,
        source=(command.username or "bacnet-monitor")[:64],
        process_id=settings.BACNET_EVENT_PROCESS_ID,
    )
    try:
        client.acknowledge_alarm(ack)
    except BACnetError as exc:
        Alarm.objects.filter(pk=alarm.pk).update(
            device_ack=Alarm.DeviceAck.FAILED, device_ack_note=str(exc)[:255]
        )
        _finish(command, PointCommand.Result.REFUSED, str(exc))
        raise
    Alarm.objects.filter(pk=alarm.pk).update(device_ack=Alarm.DeviceAck.SENT, device_ack_note="")
    _finish(command, PointCommand.Result.WRITTEN, "acknowledged on the device")
    return {"acknowledged": True, "alarm": alarm.pk}


def _register(
    client: Any, command: PointCommand, params: dict, progress: Callable[[str], None]
) -> dict:
    device = BACnetDevice.objects.get(pk=params["device_id"])
    progress(f"Adding this worker to the recipient lists of {device}")
    entry = RecipientEntry(
        address=client.local_address,
        process_id=settings.BACNET_EVENT_PROCESS_ID,
        confirmed=bool(params.get("confirmed", True)),
    )
    try:
        outcomes = client.register_recipient(device.device_instance, device.address, entry)
    except BACnetError as exc:
        _finish(command, PointCommand.Result.FAILED, str(exc))
        raise
    errors = [o.error for o in outcomes if o.error]
    said = {
        o.notification_class: o.error or ("added" if o.added else "already there") for o in outcomes
    }
    classes = ", ".join(f"{nc}: {what}" for nc, what in said.items())
    if not outcomes:
        _finish(command, PointCommand.Result.REFUSED, "the device has no notification class")
    elif errors:
        _finish(command, PointCommand.Result.REFUSED, f"notification classes {classes}")
    else:
        _finish(command, PointCommand.Result.WRITTEN, f"notification classes {classes}")
    return {
        "recipient": entry.address,
        "classes": [o.notification_class for o in outcomes],
        "added": [o.notification_class for o in outcomes if o.added],
        "errors": errors,
    }
