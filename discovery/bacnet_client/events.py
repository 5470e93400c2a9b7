"""Alarms and events: event notifications received, event information asked for,
alarms acknowledged, the product added to a notification class's recipient list.

``EventReceiver`` lives on the client's loop thread (``BACnetClient.events``), beside the
COV receiver and for the same reasons: a notification only appends to a bounded queue
(the loop never waits on the database); the BACnet worker drains it and stores in
batches (``discovery.services.alarm_events``). A notification whose parameters make no
sense (no object, a state that is no event state, an object type that cannot be in
alarm) is counted in ``garbage`` and dropped; a confirmed one is then rejected, so the
device does not take it as delivered.

The requests (GetEventInformation with its moreEvents paging, GetAlarmSummary,
AcknowledgeAlarm, ReadProperty/WriteProperty of ``recipient-list``) go through a
``Session`` each: a deadline on every request, bacpypes3's BaseException errors
converted.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from discovery.bacnet_client.convert import enum_text, int_or_none, nack_reason, safe_text
from discovery.bacnet_types import (
    AlarmAck,
    BACnetError,
    EventInformation,
    EventNotice,
    EventSummary,
    RecipientEntry,
)

if TYPE_CHECKING:
    from discovery.bacnet_client.runtime import ClientRuntime
    from discovery.bacnet_client.session import Session

log = logging.getLogger(__name__)

EVENT_STATES = frozenset(
    {"normal", "fault", "offnormal", "high-limit", "low-limit", "life-safety-alarm"}
)
# GetEventInformation pages asked for at most, per device and poll (a device that keeps
# answering moreEvents would otherwise be asked forever).
MAX_PAGES = 50
_FOREVER = (23, 59, 59, 99)


# -- time stamps ----------------------------------------------------------------------


def stamp_text(stamp: Any) -> tuple[str, float | None]:
    """A BACnetTimeStamp as text that turns back into the same value (``stamp_value``)
    and as Unix time where it says one (a time of day is today's, in local time)."""
    choice = getattr(stamp, "_choice", None)
    if choice == "sequenceNumber":
        return f"seq:{int(stamp.sequenceNumber)}", None
    if choice == "time":
        parts = tuple(stamp.time)
        text = "time:" + ",".join(str(int(p)) for p in parts)
        return text, _unix(None, parts)
    if choice == "dateTime":
        date, clock = tuple(stamp.dateTime.date), tuple(stamp.dateTime.time)
        text = "datetime:" + ",".join(str(int(p)) for p in (*date, *clock))
        return text, _unix(date, clock)
    raise ValueError(f"not a time stamp: {stamp!r}")


def _unix(date: tuple | None, clock: tuple) -> float | None:
    """Seconds since the epoch; None when a part is unspecified (255)."""
    if any(p == 255 for p in clock[:3]):
        return None
    if date is None:
        today = datetime.now().astimezone()
        year, month, day = today.year, today.month, today.day
        clock_only = True
    else:
        clock_only = False
        if any(p == 255 for p in date[:3]):
            return None
        year, month, day = date[0] + 1900, date[1], date[2]
    hundredths = 0 if clock[3] == 255 else clock[3]
    try:
        local = datetime(year, month, day, clock[0], clock[1], clock[2], hundredths * 10_000)
    except ValueError:
        return None
    unix = local.astimezone(UTC).timestamp()
    if clock_only and unix > time.time() + 300:
        unix -= 86_400  # a time of day later than now: yesterday's
    return unix


def stamp_value(bp: Any, text: str) -> Any:
    """The BACnetTimeStamp that ``stamp_text`` described."""
    kind, _, rest = text.partition(":")
    if kind == "seq":
        return bp.TimeStamp(sequenceNumber=int(rest))
    numbers = tuple(int(p) for p in rest.split(","))
    if kind == "time":
        return bp.TimeStamp(time=bp.Time(numbers))
    if kind == "datetime":
        return bp.TimeStamp(
            dateTime=bp.DateTime(date=bp.Date(numbers[:4]), time=bp.Time(numbers[4:]))
        )
    raise ValueError(f"not a time stamp text: {text!r}")


# -- notifications ----------------------------------------------------------------------


class EventReceiver:
    """Event notifications received by one client, queued for the worker to store."""

    def __init__(self, client: ClientRuntime, max_buffered: int = 100_000) -> None:
        self.client = client
        self._buffer: collections.deque[EventNotice] = collections.deque()
        self._max = max_buffered
        self._lock = threading.Lock()
        self.dropped = 0  # lost to the bound since the last drain
        self.garbage = 0  # parameters that make no sense, since the last drain
        self.received = 0  # accepted since the client started

    def hook(self, app: Any) -> None:
        """Receive event notifications on ``app`` (called on the loop thread at start)."""
        bp = self.client.bp

        async def do_UnconfirmedEventNotificationRequest(apdu: Any) -> None:
            self._receive(apdu, confirmed=False)

        async def do_ConfirmedEventNotificationRequest(apdu: Any) -> None:
            if not self._receive(apdu, confirmed=True):
                raise bp.ParameterOutOfRange("event notification parameters")
            await app.response(bp.SimpleAckPDU(context=apdu))

        app.do_UnconfirmedEventNotificationRequest = do_UnconfirmedEventNotificationRequest
        app.do_ConfirmedEventNotificationRequest = do_ConfirmedEventNotificationRequest

    def _receive(self, apdu: Any, confirmed: bool) -> bool:
        try:
            notice = self.parse(apdu, confirmed)
        except Exception as exc:  # garbage parameters: counted, never raised into the stack
            with self._lock:
                self.garbage += 1
            log.info(
                "dropped an event notification from %s: %s",
                getattr(apdu, "pduSource", "?"),
                safe_text(exc)[:200],
            )
            return False
        with self._lock:
            if len(self._buffer) >= self._max:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(notice)
            self.received += 1
        return True

    @staticmethod
    def parse(apdu: Any, confirmed: bool) -> EventNotice:
        """Plain values of a notification; ValueError when they make no sense."""
        object_type, instance = apdu.eventObjectIdentifier
        device_type, device = apdu.initiatingDeviceIdentifier
        if enum_text(device_type) != "device":
            raise ValueError(f"initiating device is a {enum_text(device_type)}")
        to_state = enum_text(apdu.toState)
        if to_state not in EVENT_STATES:
            raise ValueError(f"to-state {to_state!r} is no event state")
        from_state = enum_text(apdu.fromState) if apdu.fromState is not None else ""
        if from_state and from_state not in EVENT_STATES:
            raise ValueError(f"from-state {from_state!r} is no event state")
        priority = int_or_none(apdu.priority)
        if priority is None or not 0 <= priority <= 255:
            raise ValueError(f"priority {apdu.priority!r} not in 0..255")
        stamp, at = stamp_text(apdu.timeStamp)
        return EventNotice(
            device=int(device),
            object_type=enum_text(object_type),
            instance=int(instance),
            at=time.time(),
            process_id=int(apdu.processIdentifier or 0),
            event_time=at,
            event_stamp=stamp,
            notification_class=int_or_none(apdu.notificationClass),
            priority=priority,
            event_type=enum_text(apdu.eventType) if apdu.eventType is not None else "",
            message=safe_text(apdu.messageText)[:255],
            notify_type=enum_text(apdu.notifyType) if apdu.notifyType is not None else "",
            ack_required=bool(apdu.ackRequired),
            from_state=from_state,
            to_state=to_state,
            confirmed=confirmed,
        )

    def drain(self) -> tuple[list[EventNotice], int, int]:
        """Everything received since the last drain, oldest first; how many the bound
        dropped and how many were garbage meanwhile."""
        with self._lock:
            taken = list(self._buffer)
            self._buffer.clear()
            dropped, self.dropped = self.dropped, 0
            garbage, self.garbage = self.garbage, 0
        return taken, dropped, garbage


# -- requests to one device -------------------------------------------------------------


async def alarm_services(s: Session) -> str:
    """Which event-state service the device offers: "event-information",
    "alarm-summary" or "none" (its protocol-services-supported)."""
    services = await s.read("device", s.instance, "protocol-services-supported")
    bits = list(services)

    def has(name: str) -> bool:
        index = getattr(type(services), name, None)
        return index is not None and index < len(bits) and bool(bits[index])

    if has("getEventInformation"):
        return "event-information"
    if has("getAlarmSummary"):
        return "alarm-summary"
    return "none"


async def get_event_information(s: Session) -> EventInformation:
    """Every object the device says is not normal or unacknowledged, page by page."""
    bp = s.bp
    result = EventInformation(device=s.instance, service="event-information")
    last: Any = None
    while result.pages < MAX_PAGES:
        request = bp.GetEventInformationRequest()
        if last is not None:
            request.lastReceivedObjectIdentifier = last
        request.pduDestination = s.address
        answer = await s.call(s.client.application.request(request), "get-event-information")
        result.pages += 1
        items = list(answer.listOfEventSummaries or [])
        for item in items:
            result.summaries.append(_summary(item))
        if not answer.moreEvents or not items:
            break
        last = items[-1].objectIdentifier
    return result


def _summary(item: Any) -> EventSummary:
    object_type, instance = item.objectIdentifier
    stamps: list[str] = []
    times: list[float | None] = []
    for stamp in list(item.eventTimeStamps or [])[:3]:
        try:
            text, at = stamp_text(stamp)
        except ValueError:
            text, at = "", None
        stamps.append(text)
        times.append(at)
    priorities = [int_or_none(p) for p in list(item.eventPriorities or [])[:3]]
    return EventSummary(
        object_type=enum_text(object_type),
        instance=int(instance),
        event_state=enum_text(item.eventState),
        acked=_bits(item.acknowledgedTransitions),
        stamps=_three(stamps, ""),
        times=_three(times, None),
        priorities=_three(priorities, None),
        notify_type=enum_text(item.notifyType) if item.notifyType is not None else "",
    )


def _bits(value: Any) -> tuple[bool, bool, bool]:
    bits = [bool(b) for b in list(value or [])[:3]]
    return _three(bits, True)


def _three(values: list[Any], pad: Any) -> Any:
    values = list(values) + [pad] * (3 - len(values))
    return tuple(values[:3])


async def get_alarm_summary(s: Session) -> EventInformation:
    """The device's alarms by GetAlarmSummary (older devices): state and acks only."""
    bp = s.bp
    request = bp.GetAlarmSummaryRequest()
    request.pduDestination = s.address
    answer = await s.call(s.client.application.request(request), "get-alarm-summary")
    result = EventInformation(device=s.instance, service="alarm-summary", pages=1)
    for item in answer.listOfAlarmSummaries or []:
        object_type, instance = item.objectIdentifier
        result.summaries.append(
            EventSummary(
                object_type=enum_text(object_type),
                instance=int(instance),
                event_state=enum_text(item.alarmState),
                acked=_bits(item.acknowledgedTransitions),
                notify_type="alarm",
            )
        )
    return result


async def acknowledge_alarm(s: Session, ack: AlarmAck) -> None:
    """AcknowledgeAlarm of one transition; raises BACnetError with the device's reason."""
    bp = s.bp
    now = datetime.now().astimezone()
    request = bp.AcknowledgeAlarmRequest(
        acknowledgingProcessIdentifier=ack.process_id,
        eventObjectIdentifier=s.object_id(ack.object_type, ack.instance),
        eventStateAcknowledged=bp.EventState(ack.event_state),
        timeStamp=stamp_value(bp, ack.event_stamp),
        acknowledgmentSource=ack.source[:64],
        timeOfAcknowledgment=bp.TimeStamp(
            dateTime=bp.DateTime(
                date=bp.Date.now(now.timestamp()), time=bp.Time.now(now.timestamp())
            )
        ),
    )
    request.pduDestination = s.address
    what = f"acknowledge-alarm {ack.object_type},{ack.instance} {ack.event_state}"
    await s.call(s.client.application.request(request), what)


async def notification_classes(s: Session) -> list[int]:
    """The instances of the device's notification-class objects (its object list)."""
    from discovery.bacnet_client.device import DeviceWork

    job = DeviceWork(s)
    props = await job.device_properties()
    return sorted(i for t, i in await job.object_list(props) if t == "notification-class")


async def add_recipient(s: Session, nc_instance: int, entry: RecipientEntry) -> bool:
    """Add ``entry`` to a notification class's recipient list (ReadProperty, then
    WriteProperty of the whole list). False when it was there already (nothing
    written)."""
    bp = s.bp
    what = f"recipient-list of notification-class,{nc_instance}"
    current = list(await s.read("notification-class", nc_instance, "recipient-list") or [])
    wanted = destination(bp, entry)
    for existing in current:
        if _same_recipient(existing, wanted):
            return False
    answer = await s.call(
        s.client.application.write_property(
            s.address,
            s.object_id("notification-class", nc_instance),
            bp.PropertyIdentifier("recipient-list"),
            [*current, wanted],
        ),
        f"write {what}",
    )
    if isinstance(answer, bp.ErrorRejectAbortNack):
        reason = nack_reason(bp, answer)
        raise BACnetError(s.where(f"write {what}: {reason}"), device=s.instance, reason=reason)
    if isinstance(answer, str) and answer.startswith("-no "):
        raise BACnetError(s.where(f"write {what}: {answer.strip('-')}"), device=s.instance)
    return True


def destination(bp: Any, entry: RecipientEntry) -> Any:
    """A BACnetDestination: every day, all day, the three transitions."""
    if entry.device is not None:
        recipient = bp.Recipient(device=bp.ObjectIdentifier(("device", entry.device)))
    else:
        mac = bp.Address(entry.address).addrAddr
        recipient = bp.Recipient(address=bp.DeviceAddress(networkNumber=0, macAddress=mac))
    return bp.Destination(
        validDays=bp.DaysOfWeek([1] * 7),
        fromTime=bp.Time((0, 0, 0, 0)),
        toTime=bp.Time(_FOREVER),
        recipient=recipient,
        processIdentifier=entry.process_id,
        issueConfirmedNotifications=entry.confirmed,
        transitions=bp.EventTransitionBits([1, 1, 1]),
    )


def _same_recipient(a: Any, b: Any) -> bool:
    ra, rb = a.recipient, b.recipient
    if ra.device is not None or rb.device is not None:
        return ra.device is not None and rb.device is not None and ra.device == rb.device
    return bytes(ra.address.macAddress) == bytes(rb.address.macAddress) and int(
        a.processIdentifier
    ) == int(b.processIdentifier)
