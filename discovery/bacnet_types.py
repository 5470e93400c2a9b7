"""Plain data exchanged between the BACnet client and the rest of the product.

No BAC0 or bacpypes3 here: services, tasks and tests use these without a BACnet stack.
Everything is picklable and JSON-friendly, so results can cross process boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class BACnetError(Exception):
    """A BACnet request failed: error, reject, abort, or no answer within its deadline.

    bacpypes3 raises its errors as BaseException subclasses, which would kill a Celery
    worker; the client converts them to this (picklable) type at the boundary."""

    def __init__(self, message: str, *, device: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.device = device
        self.reason = reason or message

    def __reduce__(self):  # keep keyword arguments across pickling
        return (_rebuild_error, (type(self), str(self), self.device, self.reason))


def _rebuild_error(cls, message, device, reason):
    return cls(message, device=device, reason=reason)


class BACnetTimeout(BACnetError):
    """No (complete) answer within the request's or the device's deadline."""


class BACnetConfigError(BACnetError):
    """The BACnet stack cannot start: bad interface, port in use, bad BBMD address."""


@dataclass(frozen=True)
class DiscoveredDevice:
    """One I-Am answer."""

    instance: int
    address: str
    network_number: int | None = None
    vendor_id: int | None = None
    max_apdu: int | None = None
    segmentation: str | None = None


@dataclass
class DiscoveryResult:
    devices: list[DiscoveredDevice]
    # Device instances that answered from more than one address: reported, not merged.
    duplicates: dict[int, list[str]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    # Every I-Am of a duplicated instance, in the order they arrived (``devices`` holds
    # the first one): the caller keeps the binding it already has.
    answers: dict[int, list[DiscoveredDevice]] = field(default_factory=dict)


@dataclass
class DeviceProperties:
    """The device object's descriptive properties (empty string / None when unreadable)."""

    name: str = ""
    vendor_id: int | None = None
    vendor_name: str = ""
    model_name: str = ""
    firmware_revision: str = ""
    application_software_version: str = ""
    description: str = ""
    location: str = ""
    protocol_revision: int | None = None
    max_apdu: int | None = None
    segmentation: str = ""
    supports_rpm: bool = True


@dataclass
class PointInfo:
    """An object of a device, as enumeration finds it."""

    object_type: str
    instance: int
    name: str = ""
    description: str = ""
    units: str = ""  # bacpypes3's hyphenated name: "degrees-celsius"
    # Binary points: [inactive text, active text]; multi-state points: the state texts,
    # state 1 first. Empty when the device has none.
    state_texts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PointRef:
    object_type: str
    instance: int
    # Optional: (inactive, active) texts of a binary point or the state texts of a
    # multi-state point (state 1 first), so that PointValue.text uses them.
    state_texts: tuple[str, ...] = ()


@dataclass
class DeviceTarget:
    """What to read from one device in a collection cycle."""

    instance: int
    address: str
    points: list[PointRef]
    max_apdu: int | None = None
    segmentation: str | None = None
    supports_rpm: bool = True
    # Other devices that claim this instance: never read, never moved to.
    conflict_addresses: tuple[str, ...] = ()


@dataclass
class PointValue:
    """Present value and status flags of one point, or why they could not be read.

    ``value`` is set for numbers (analog, binary as 0/1, multi-state index); ``text``
    for anything else (and the state text of a multi-state point when known)."""

    object_type: str
    instance: int
    value: float | None = None
    text: str = ""
    status_flags: int | None = None
    error: str = ""


@dataclass
class DeviceEnumeration:
    """What enumerate_devices() learnt about one device.

    ``error`` set means the device failed or ran out of its deadline; whatever was read
    before (``properties``, possibly some ``points``) is kept."""

    device: DiscoveredDevice
    properties: DeviceProperties | None = None
    points: list[PointInfo] = field(default_factory=list)
    error: str = ""
    elapsed_s: float = 0.0
    # Ended by its device deadline (not by the device failing): another pass goes on.
    cut_short: bool = False
    # ``points`` holds only objects that were not known yet (a pass that goes on).
    only_new: bool = False


@dataclass
class DeviceReadResult:
    """One device's part of a read cycle.

    A device that does not answer at its address is looked for again (Who-Is for its
    instance): ``moved_to`` is then the I-Am of its new address, where it was read.
    ``reachable`` is False when, its reads timed out, it did not answer that Who-Is
    either (offline); a device with ``error`` that is reachable is in fault. ``conflict`` lists the
    addresses that answered for the instance when more than one did (it is not read)."""

    instance: int
    values: list[PointValue] = field(default_factory=list)
    error: str = ""  # set when the whole device failed (silent, timed out)
    supports_rpm: bool = True  # False when the device rejected ReadPropertyMultiple
    elapsed_s: float = 0.0
    reachable: bool = True
    moved_to: DiscoveredDevice | None = None
    conflict: list[str] = field(default_factory=list)


@dataclass
class PrioritySlot:
    """One set slot of a commandable object's priority array."""

    priority: int
    value: float | None = None
    text: str = ""


@dataclass
class CommandState:
    """What decides a commandable point's present value, read in one go from the device.

    ``slots`` lists only the priorities that hold a value (highest priority first);
    ``current_priority`` is the one in control (None: the relinquish default is)."""

    object_type: str
    instance: int
    present_value: float | None = None
    present_text: str = ""
    slots: list[PrioritySlot] = field(default_factory=list)
    relinquish_default: float | None = None
    relinquish_default_text: str = ""
    current_priority: int | None = None
    min_present_value: float | None = None
    max_present_value: float | None = None
    number_of_states: int | None = None
    commandable: bool = True  # False when the object has no priority array


@dataclass(frozen=True)
class CovTarget:
    """One object to subscribe to (SubscribeCOV) on one device."""

    device: int
    address: str
    object_type: str
    instance: int
    confirmed: bool = False
    lifetime_s: int = 300


@dataclass
class CovOutcome:
    """How a subscription request went: ``error`` is empty when the device accepted it;
    ``refused`` tells a device's no (error, reject) from no answer at all."""

    target: CovTarget
    error: str = ""
    refused: bool = False


@dataclass
class CovNotification:
    """One COV notification's present value (and status flags), as it arrived.

    ``at`` is the Unix time of arrival: the reading's timestamp."""

    device: int
    object_type: str
    instance: int
    at: float
    value: float | None = None
    text: str = ""
    status_flags: int | None = None


@dataclass
class EventNotice:
    """One event notification (confirmed or unconfirmed) as it arrived, its parameters
    turned into plain values.

    ``event_stamp`` is the transition's time stamp as the device keeps it ("time:..",
    "seq:N" or "datetime:.."): AcknowledgeAlarm must send it back unchanged.
    ``event_time`` is the same as Unix time where it says one (a bare time of day is
    taken as today's), else None. ``at`` is the Unix time of arrival."""

    device: int
    object_type: str
    instance: int
    at: float
    process_id: int = 0
    event_time: float | None = None
    event_stamp: str = ""
    notification_class: int | None = None
    priority: int | None = None
    event_type: str = ""
    message: str = ""
    notify_type: str = ""
    ack_required: bool = False
    from_state: str = ""
    to_state: str = ""
    confirmed: bool = False


@dataclass
class EventSummary:
    """One object of a device that is not normal, or has a transition not acknowledged:
    an element of GetEventInformation's answer (or GetAlarmSummary's, which says less:
    no time stamps, priorities or notify type).

    ``stamps`` and ``priorities`` are per transition: to-offnormal, to-fault, to-normal;
    ``acked`` likewise."""

    object_type: str
    instance: int
    event_state: str
    acked: tuple[bool, bool, bool] = (True, True, True)
    stamps: tuple[str, str, str] = ("", "", "")
    times: tuple[float | None, float | None, float | None] = (None, None, None)
    priorities: tuple[int | None, int | None, int | None] = (None, None, None)
    notify_type: str = ""


@dataclass
class EventInformation:
    """A device's answer to the event-information poll: ``service`` says which service
    answered ("event-information" or "alarm-summary"), ``pages`` how many requests it
    took (GetEventInformation pages with moreEvents)."""

    device: int
    service: str
    summaries: list[EventSummary] = field(default_factory=list)
    pages: int = 0


@dataclass(frozen=True)
class AlarmAck:
    """What AcknowledgeAlarm sends: the object, the state being acknowledged (its
    transition: offnormal states, fault or normal) and the transition's time stamp as
    the device gave it; ``source`` names who acknowledged."""

    device: int
    address: str
    object_type: str
    instance: int
    event_state: str
    event_stamp: str
    source: str
    process_id: int = 0


@dataclass(frozen=True)
class RecipientEntry:
    """A BACnetDestination for a notification class's recipient list: by the worker's
    device instance (``device``) or its address (``address``, "A.B.C.D:port"), every
    day, all day, the three transitions."""

    device: int | None = None
    address: str = ""
    process_id: int = 0
    confirmed: bool = True
