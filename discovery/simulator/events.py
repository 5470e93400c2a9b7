"""Intrinsic event reporting of the simulated devices (the device side of AE-N-I-B,
AE-ACK-B, AE-INFO-B and AE-ASUM-B).

With ``--events`` every normal device gets, besides its points:

- notification class ``NOTIFICATION_CLASS`` (priorities, ack required on to-offnormal
  and to-fault, an empty recipient list that a client fills with WriteProperty);
- analog input ``ALARM_AI``, out of range (bacpypes3's ``OutOfRangeEventAlgorithm``):
  high limit ``HIGH_LIMIT``, low limit ``LOW_LIMIT``, deadband ``DEADBAND``;
- binary input ``ALARM_BI``, change of state (``ChangeOfStateEventAlgorithm``), in
  alarm when active;
- analog input ``HIDDEN_AI``, reporting like ``ALARM_AI`` but missing from the object
  list (a device that notifies about objects it never reported).

Their present values are plain stored values: a test moves one out of its limits with
WriteProperty (what the field sensor would do), and the algorithm reacts at once.

bacpypes3 runs the algorithms and sends the notifications, but has no server side for
GetEventInformation, GetAlarmSummary and AcknowledgeAlarm, and does not clear an
acked-transitions bit when a transition happens: ``EventServicesMixin`` adds both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bacpypes3.apdu import (
    ConfirmedEventNotificationRequest,
    GetAlarmSummaryACK,
    GetEventInformationACK,
    SimpleAckPDU,
    UnconfirmedEventNotificationRequest,
)
from bacpypes3.basetypes import (
    EngineeringUnits,
    EventState,
    EventTransitionBits,
    GetAlarmSummaryAlarmSummary,
    GetEventInformationEventSummary,
    LimitEnable,
    NotifyType,
    TimeStamp,
)
from bacpypes3.errors import ExecutionError
from bacpypes3.local.analog import AnalogInputObjectIR
from bacpypes3.local.binary import BinaryInputObjectIR
from bacpypes3.object import NotificationClassObject
from bacpypes3.pdu import IPv4Address, LocalStation
from bacpypes3.primitivedata import ObjectIdentifier, Time

log = logging.getLogger("discovery.simulator")

NOTIFICATION_CLASS = 1
ALARM_AI = 9001
ALARM_BI = 9002
HIDDEN_AI = 9003
HIGH_LIMIT = 30.0
LOW_LIMIT = 10.0
DEADBAND = 1.0
NORMAL_VALUE = 20.0
PRIORITIES = (100, 50, 200)  # to-offnormal, to-fault, to-normal
EVENT_INFO_PAGE = 2  # summaries per GetEventInformation answer: clients must page


def _unspecified() -> TimeStamp:
    return TimeStamp(time=Time((255, 255, 255, 255)))


def transition_index(state: Any) -> int:
    """The index of a state's transition in the event arrays (offnormal, fault, normal)."""
    state = EventState(state)
    if state == EventState.normal:
        return 2
    if state == EventState.fault:
        return 1
    return 0


class _WrittenValue:
    """A present value a test writes. bacpypes3's ``write_property`` stores past the
    object's ``__setattr__``, so the event algorithm (a property monitor) would never
    see it: assign it instead."""

    async def write_property(
        self, attr: Any, value: Any, index: int | None = None, priority: int | None = None
    ) -> None:
        if attr in ("presentValue", "present-value", 85):
            obj: Any = self
            datatype = obj.get_property_type("presentValue")
            obj.presentValue = value if isinstance(value, datatype) else datatype.cast(value)
            return
        await super().write_property(attr, value, index, priority)  # type: ignore[misc]


class EventAnalogInput(_WrittenValue, AnalogInputObjectIR):
    """An out-of-range analog input whose present value a test writes."""


class EventBinaryInput(_WrittenValue, BinaryInputObjectIR):
    """A change-of-state binary input whose present value a test writes."""


def _event_kwargs(object_type: str, instance: int, name: str, texts: tuple[str, ...]) -> dict:
    return {
        "objectIdentifier": (object_type, instance),
        "objectName": name,
        "description": f"{name} (intrinsic alarm)",
        "statusFlags": [0, 0, 0, 0],
        "eventState": "normal",
        "outOfService": False,
        "reliability": "no-fault-detected",
        "timeDelay": 0,
        "notificationClass": NOTIFICATION_CLASS,
        "eventEnable": [1, 1, 1],
        "ackedTransitions": [1, 1, 1],
        "notifyType": NotifyType.alarm,
        "eventTimeStamps": [_unspecified(), _unspecified(), _unspecified()],
        "eventDetectionEnable": True,
        "eventMessageTexts": ["", "", ""],
        "eventMessageTextsConfig": list(texts),
    }


def add_event_objects(app: Any) -> None:
    """Give ``app`` (a running loop is needed: bacpypes3 links the objects to their
    notification class in a task) the notification class and the three alarm points."""
    nc = NotificationClassObject(
        objectIdentifier=("notification-class", NOTIFICATION_CLASS),
        objectName="Alarms",
        notificationClass=NOTIFICATION_CLASS,
        priority=list(PRIORITIES),
        ackRequired=[1, 1, 0],
        recipientList=[],
    )
    app.add_object(nc)
    _list(app, nc)
    analog_texts = ("Zone temperature out of range", "Zone temperature sensor fault", "")
    for instance, name, listed in (
        (ALARM_AI, "Zone Temp Alarmed", True),
        (HIDDEN_AI, "Unlisted Temp", False),
    ):
        ai = EventAnalogInput(
            **_event_kwargs("analog-input", instance, name, analog_texts),
            presentValue=NORMAL_VALUE,
            units=EngineeringUnits.degreesCelsius,
            covIncrement=0.1,
            highLimit=HIGH_LIMIT,
            lowLimit=LOW_LIMIT,
            deadband=DEADBAND,
            limitEnable=LimitEnable([1, 1]),
        )
        _add(app, ai, listed)
    bi = EventBinaryInput(
        **_event_kwargs(
            "binary-input", ALARM_BI, "Filter Alarm", ("Filter dirty", "Filter sensor fault", "")
        ),
        presentValue="inactive",
        polarity="normal",
        alarmValue="active",
        inactiveText="Clean",
        activeText="Dirty",
    )
    _add(app, bi, True)


def _add(app: Any, obj: Any, listed: bool) -> None:
    app.add_object(obj)
    obj._property_monitors["eventState"].append(
        lambda old, new, obj=obj: _on_transition(obj, old, new)
    )
    if listed:
        _list(app, obj)


def _list(app: Any, obj: Any) -> None:
    ids = getattr(app.device_object, "_object_ids", None)
    if ids is not None:
        ids.append(obj.objectIdentifier)
        app.device_object._cached_object_list = None


def _on_transition(obj: Any, old: Any, new: Any) -> None:
    """A transition that needs an acknowledgement is unacknowledged until it gets one
    (clause 13.2.2.1.3); bacpypes3 leaves the bit alone."""
    if old == new:
        return
    nc = obj._notification_class_object
    index = transition_index(new)
    if nc is not None and nc.ackRequired[index]:
        acked = list(obj.ackedTransitions)
        acked[index] = 0
        obj.ackedTransitions = EventTransitionBits(acked)
    log.info("%s: event state %s -> %s", obj.objectName, EventState(old), EventState(new))


@dataclass
class AckReceived:
    """One AcknowledgeAlarm a device accepted (tests look at them in the log)."""

    object_id: str
    state: str
    source: str


class EventServicesMixin:
    """GetEventInformation, GetAlarmSummary and AcknowledgeAlarm for a simulated
    application, answered from its intrinsic-reporting objects."""

    def _event_objects(self) -> list[Any]:
        app: Any = self
        found = [
            obj
            for obj in list(app.objectIdentifier.values())
            if getattr(obj, "_event_algorithm", None) is not None
        ]
        return sorted(found, key=lambda o: (int(o.objectIdentifier[0]), o.objectIdentifier[1]))

    def request(self, apdu: Any) -> Any:
        """bacpypes3 turns a recipient given by address into a ``LocalStation`` of six
        octets, which its IPv4 link cannot send to: make it the IPv4 address it is."""
        destination = getattr(apdu, "pduDestination", None)
        if (
            isinstance(
                apdu, ConfirmedEventNotificationRequest | UnconfirmedEventNotificationRequest
            )
            and isinstance(destination, LocalStation)
            and destination.addrLen == 6
        ):
            apdu.pduDestination = IPv4Address(destination.addrAddr)
        if isinstance(
            apdu, ConfirmedEventNotificationRequest | UnconfirmedEventNotificationRequest
        ):
            self._fix_transition_fields(apdu)
        return super().request(apdu)  # type: ignore[misc]

    def _fix_transition_fields(self, apdu: Any) -> None:
        """bacpypes3 picks the priority and ack-required of a notification by the event
        state's number (offnormal is 2: the to-normal entry) instead of the transition:
        a controller sends the transition's own (clause 13.8.2)."""
        app: Any = self
        obj = app.get_object_id(ObjectIdentifier(apdu.eventObjectIdentifier))
        nc = getattr(obj, "_notification_class_object", None)
        if nc is None:
            return
        index = transition_index(apdu.toState)
        apdu.priority = int(nc.priority[index])
        apdu.ackRequired = bool(nc.ackRequired[index])

    def get_services_supported(self) -> Any:
        """The alarm services only where there are event objects (as a real device
        without intrinsic reporting says)."""
        services = super().get_services_supported()  # type: ignore[misc]
        if not self._event_objects():
            for name in ("getEventInformation", "getAlarmSummary", "acknowledgeAlarm"):
                services[getattr(services, name)] = 0
        return services

    async def do_GetEventInformationRequest(self, apdu: Any) -> None:
        """Objects not normal or with an unacknowledged transition, in identifier order,
        ``EVENT_INFO_PAGE`` at a time after ``lastReceivedObjectIdentifier``."""
        app: Any = self
        after = apdu.lastReceivedObjectIdentifier
        summaries = []
        active = [
            obj
            for obj in self._event_objects()
            if obj.eventState != EventState.normal or not all(obj.ackedTransitions)
        ]
        if after is not None:
            key = (int(after[0]), after[1])
            active = [
                o for o in active if (int(o.objectIdentifier[0]), o.objectIdentifier[1]) > key
            ]
        for obj in active[:EVENT_INFO_PAGE]:
            nc = obj._notification_class_object
            summaries.append(
                GetEventInformationEventSummary(
                    objectIdentifier=obj.objectIdentifier,
                    eventState=obj.eventState,
                    acknowledgedTransitions=obj.ackedTransitions,
                    eventTimeStamps=list(obj.eventTimeStamps),
                    notifyType=obj.notifyType,
                    eventEnable=obj.eventEnable,
                    eventPriorities=list(nc.priority) if nc is not None else [0, 0, 0],
                )
            )
        ack = GetEventInformationACK(
            listOfEventSummaries=summaries,
            moreEvents=len(active) > EVENT_INFO_PAGE,
            context=apdu,
        )
        await app.response(ack)

    async def do_GetAlarmSummaryRequest(self, apdu: Any) -> None:
        """Objects of notify type alarm that are not normal."""
        app: Any = self
        summaries = [
            GetAlarmSummaryAlarmSummary(
                objectIdentifier=obj.objectIdentifier,
                alarmState=obj.eventState,
                acknowledgedTransitions=obj.ackedTransitions,
            )
            for obj in self._event_objects()
            if obj.eventState != EventState.normal and obj.notifyType == NotifyType.alarm
        ]
        await app.response(GetAlarmSummaryACK(listOfAlarmSummaries=summaries, context=apdu))

    async def do_AcknowledgeAlarmRequest(self, apdu: Any) -> None:
        """Set the acknowledged transition's bit, if the time stamp names the latest
        transition of that kind (else the error a controller gives: invalid time stamp)."""
        app: Any = self
        obj = app.get_object_id(ObjectIdentifier(apdu.eventObjectIdentifier))
        if obj is None or getattr(obj, "_event_algorithm", None) is None:
            raise ExecutionError(errorClass="object", errorCode="unknownObject")
        index = transition_index(apdu.eventStateAcknowledged)
        if apdu.timeStamp != obj.eventTimeStamps[index]:
            raise ExecutionError(errorClass="services", errorCode="invalidTimeStamp")
        acked = list(obj.ackedTransitions)
        acked[index] = 1
        obj.ackedTransitions = EventTransitionBits(acked)
        received = AckReceived(
            object_id=f"{obj.objectIdentifier[0]},{obj.objectIdentifier[1]}",
            state=str(EventState(apdu.eventStateAcknowledged)),
            source=str(apdu.acknowledgmentSource),
        )
        acks: list[AckReceived] = self.__dict__.setdefault("acks_received", [])
        acks.append(received)
        # Tests read this line from the simulator's log.
        log.info(
            "AcknowledgeAlarm accepted: %s %s by %r",
            received.object_id,
            received.state,
            received.source,
        )
        await app.response(SimpleAckPDU(context=apdu))


def raw_event_notification(
    device: int,
    object_type: str,
    instance: int,
    *,
    to_state: int = 3,
    from_state: int = 0,
    priority: int = 100,
    process_id: int = 1,
) -> bytes:
    """A whole BACnet/IP datagram (BVLL, NPDU, APDU) carrying an UnconfirmedEvent-
    Notification with whatever values are given: tests send it raw to check that
    nonsense (a state that is no event state, priority 999) is counted and dropped."""
    from bacpypes3.apdu import UnconfirmedEventNotificationRequest as Request
    from bacpypes3.basetypes import EventType

    request = Request(
        processIdentifier=process_id,
        initiatingDeviceIdentifier=ObjectIdentifier(("device", device)),
        eventObjectIdentifier=ObjectIdentifier((object_type, instance)),
        timeStamp=TimeStamp.as_time(),
        notificationClass=NOTIFICATION_CLASS,
        priority=priority,
        eventType=EventType.outOfRange,
        notifyType=NotifyType.alarm,
        ackRequired=False,
        fromState=EventState(from_state),
        toState=EventState(to_state),
    )
    apdu = request.encode().encode().pduData  # parameters, then the APDU header
    npdu = b"\x01\x00" + bytes(apdu)
    return b"\x81\x0a" + (4 + len(npdu)).to_bytes(2, "big") + npdu
