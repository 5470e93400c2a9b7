"""Change of value: SubscribeCOV requests and the notifications that answer them.

``CovReceiver`` lives on the client's loop thread (``BACnetClient.cov``). Why this shape:

- bacpypes3's own ``change_of_value()`` context manager wants one awaiting task per
  subscription and refreshes it by itself; the product renews from the database (a
  worker restart must resubscribe too), so it sends SubscribeCOV itself, through a
  ``Session`` (deadline, errors converted), and handles the notifications directly.
- A notification only appends to a bounded queue: the loop thread never waits on the
  database, so a flood cannot stall reads. The worker drains the queue and stores it
  in batches (``discovery.services.cov``); what the bound drops is counted.
- Each subscription gets a process identifier of its own, stable for the life of the
  client, so a notification names its point without a lookup on the device's address.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from discovery.bacnet_client.convert import convert_present_value, safe_text, status_flags_mask
from discovery.bacnet_client.session import gather_all
from discovery.bacnet_types import (
    BACnetError,
    BACnetTimeout,
    CovNotification,
    CovOutcome,
    CovTarget,
)

if TYPE_CHECKING:
    from discovery.bacnet_client.runtime import ClientRuntime

log = logging.getLogger(__name__)

_Key = tuple[int, str, int]  # device instance, object type, object instance


class CovReceiver:
    """Subscriptions sent and notifications received by one client."""

    def __init__(self, client: ClientRuntime, max_buffered: int = 100_000) -> None:
        self.client = client
        self._buffer: collections.deque[CovNotification] = collections.deque()
        self._max = max_buffered
        self._lock = threading.Lock()
        self._process_ids: dict[_Key, int] = {}
        self._keys: dict[int, _Key] = {}
        self.dropped = 0  # notifications lost to the bound since the last drain
        self.unknown = 0  # notifications for no subscription of ours (counted, ignored)
        self.last_heard: dict[_Key, float] = {}

    def hook(self, app: Any) -> None:
        """Receive COV notifications on ``app`` (called on the loop thread at start)."""
        original_confirmed = app.do_ConfirmedCOVNotificationRequest

        async def do_UnconfirmedCOVNotificationRequest(apdu: Any) -> None:
            self._receive(apdu)

        async def do_ConfirmedCOVNotificationRequest(apdu: Any) -> None:
            if not self._receive(apdu):
                await original_confirmed(apdu)  # answers unknown-subscription
                return
            await app.response(self.client.bp.SimpleAckPDU(context=apdu))

        app.do_UnconfirmedCOVNotificationRequest = do_UnconfirmedCOVNotificationRequest
        app.do_ConfirmedCOVNotificationRequest = do_ConfirmedCOVNotificationRequest

    def process_id(self, key: _Key) -> int:
        with self._lock:
            pid = self._process_ids.get(key)
            if pid is None:
                pid = len(self._process_ids) + 1
                self._process_ids[key] = pid
                self._keys[pid] = key
            return pid

    def _receive(self, apdu: Any) -> bool:
        """Queue a notification's value; False when it is not for one of ours."""
        arrived = time.time()
        try:
            key = self._keys.get(int(apdu.subscriberProcessIdentifier))
            object_type, instance = apdu.monitoredObjectIdentifier
            device = int(apdu.initiatingDeviceIdentifier[1])
            if key is None or key != (device, str(object_type), int(instance)):
                self.unknown += 1
                return False
            note = CovNotification(device=key[0], object_type=key[1], instance=key[2], at=arrived)
            for item in apdu.listOfValues or ():
                self._apply(note, item)
        except Exception as exc:  # garbage parameters: counted, never raised into the stack
            log.debug("ignoring a malformed COV notification: %r", exc)
            self.unknown += 1
            return False
        self.last_heard[key] = arrived
        if len(self._buffer) >= self._max:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(note)
        return True

    def _apply(self, note: CovNotification, item: Any) -> None:
        bp = self.client.bp
        prop = str(item.propertyIdentifier)
        if prop == "present-value":
            cls = bp.get_object_class(note.object_type)
            datatype = cls.get_property_type("presentValue") if cls else bp.Real
            value = item.value.cast_out(datatype)
            note.value, note.text = convert_present_value(bp, note.object_type, value)
        elif prop == "status-flags":
            note.status_flags = status_flags_mask(item.value.cast_out(bp.StatusFlags))

    def drain(self) -> tuple[list[CovNotification], int]:
        """Everything received since the last drain, and how many the bound dropped."""
        taken: list[CovNotification] = []
        while True:
            try:
                taken.append(self._buffer.popleft())
            except IndexError:
                break
        dropped, self.dropped = self.dropped, 0
        return taken, dropped

    async def subscribe(self, targets: Sequence[CovTarget]) -> list[CovOutcome]:
        """SubscribeCOV (or renew: the same request again) for each target, concurrently
        per device, sequentially within one (a device's small request buffer)."""
        by_device: dict[tuple[int, str], list[CovTarget]] = {}
        for target in targets:
            by_device.setdefault((target.device, target.address), []).append(target)
        outcomes: list[CovOutcome] = []

        async def one_device(instance: int, address: str, items: list[CovTarget]) -> None:
            try:
                session = self.client._session(instance, address)
            except BACnetError as exc:
                outcomes.extend(CovOutcome(t, error=str(exc)) for t in items)
                return
            for target in items:
                outcomes.append(await self._subscribe_one(session, target))

        await gather_all(one_device(d, a, items) for (d, a), items in by_device.items())
        return outcomes

    async def _subscribe_one(self, session: Any, target: CovTarget) -> CovOutcome:
        bp = self.client.bp
        key = (target.device, target.object_type, target.instance)
        request = bp.SubscribeCOVRequest(
            subscriberProcessIdentifier=self.process_id(key),
            monitoredObjectIdentifier=session.object_id(target.object_type, target.instance),
            issueConfirmedNotifications=target.confirmed,
            lifetime=target.lifetime_s,
        )
        request.pduDestination = session.address
        what = f"subscribe-cov {target.object_type},{target.instance}"
        try:
            await session.call(self.client.application.request(request), what)
        except BACnetError as exc:
            # An error or reject is the device's no; silence may pass (it is retried).
            refused = not isinstance(exc, BACnetTimeout) and exc.reason != "cancelled"
            return CovOutcome(target, error=safe_text(exc)[:500], refused=refused)
        return CovOutcome(target)
