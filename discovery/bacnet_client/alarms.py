"""The facade's alarm methods (mixed into ``BACnetClient``): event notifications taken
from the receiver, event information polled, alarms acknowledged, the product
registered as a recipient. The BACnet work itself is in ``events``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from discovery.bacnet_client import events
from discovery.bacnet_client.convert import safe_text
from discovery.bacnet_types import (
    AlarmAck,
    BACnetError,
    EventInformation,
    EventNotice,
    RecipientEntry,
)


@dataclass
class EventPoll:
    """One device's part of an event-information poll: ``services`` as read (or as
    given), ``info`` when it answered, ``error`` when not."""

    device: int
    address: str
    services: str = ""
    info: EventInformation | None = None
    error: str = ""


@dataclass
class Registration:
    """How adding the product to one notification class went."""

    notification_class: int
    added: bool = False
    error: str = ""


class AlarmsMixin:
    """Event notifications, GetEventInformation / GetAlarmSummary, AcknowledgeAlarm and
    recipient registration."""

    config: Any
    events: events.EventReceiver
    _run: Any
    _session: Any

    def take_event_notices(self) -> tuple[list[EventNotice], int, int]:
        """Notifications received since the last call (oldest first), how many the
        buffer's bound dropped and how many were garbage meanwhile."""
        return self.events.drain()

    def poll_events(self, devices: Sequence[tuple[int, str, str]]) -> list[EventPoll]:
        """(instance, address, alarm services or "" when unknown) of each device: read
        what services it has when unknown, then ask GetEventInformation (every page)
        or GetAlarmSummary. Devices concurrently; one result per device, in order."""
        devices = list(devices)
        if not devices:
            return []

        async def one(instance: int, address: str, services: str) -> EventPoll:
            poll = EventPoll(instance, address, services)
            try:
                session = self._session(instance, address)
                if not poll.services:
                    poll.services = await events.alarm_services(session)
                if poll.services == "event-information":
                    poll.info = await events.get_event_information(session)
                elif poll.services == "alarm-summary":
                    poll.info = await events.get_alarm_summary(session)
            except BACnetError as exc:
                poll.error = str(exc)
            except Exception as exc:  # an undecodable answer: this device only
                poll.error = f"device {instance}: {type(exc).__name__}: {safe_text(exc)}"
            return poll

        async def work() -> list[EventPoll]:
            limit = asyncio.Semaphore(max(1, self.config.read_concurrency))

            async def bounded(item: tuple[int, str, str]) -> EventPoll:
                async with limit:
                    return await one(*item)

            return list(await asyncio.gather(*(bounded(d) for d in devices)))

        rounds = len(devices) / max(1, self.config.read_concurrency) + 1
        limit_s = rounds * self.config.request_timeout_s * (events.MAX_PAGES + 2) + 10
        return self._run(work, limit_s)

    def acknowledge_alarm(self, ack: AlarmAck) -> None:
        """AcknowledgeAlarm; raises ``BACnetError`` with the device's reason."""

        async def work() -> None:
            await events.acknowledge_alarm(self._session(ack.device, ack.address), ack)

        self._run(work, self.config.request_timeout_s * 2 + 10)

    def register_recipient(
        self,
        instance: int,
        address: str,
        entry: RecipientEntry,
        classes: Sequence[int] = (),
    ) -> list[Registration]:
        """Add ``entry`` to the recipient list of each of the device's notification
        classes (``classes``, or every one in its object list)."""

        async def work() -> list[Registration]:
            session = self._session(instance, address)
            chosen = list(classes) or await events.notification_classes(session)
            outcomes = []
            for nc in chosen:
                outcome = Registration(nc)
                try:
                    outcome.added = await events.add_recipient(session, nc, entry)
                except BACnetError as exc:
                    outcome.error = str(exc)
                outcomes.append(outcome)
            return outcomes

        return self._run(work, self.config.device_deadline_s + 10)
