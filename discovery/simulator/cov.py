"""Change-of-value reporting of the simulated devices (the device side of DS-COV-B).

bacpypes3's own COV detection (``local/cov.py``) watches property *writes*; the
simulated present values are functions of the clock and are never written, so a small
watcher compares each subscribed object's value every ``WATCH_S`` and sends a
notification when it moved by the object's COV increment (analog) or changed at all
(binary, multi-state), or its status flags changed, as a device does. Subscriptions
expire after their lifetime and are renewed by the same request again; a restarted
device has none (they live here).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from bacpypes3.apdu import (
    ConfirmedCOVNotificationRequest,
    SimpleAckPDU,
    UnconfirmedCOVNotificationRequest,
)
from bacpypes3.basetypes import PropertyValue
from bacpypes3.constructeddata import Any as AnyValue
from bacpypes3.errors import ExecutionError

log = logging.getLogger("discovery.simulator")

WATCH_S = 0.05


@dataclass
class _Subscription:
    address: Any
    process_id: int
    object_id: Any
    confirmed: bool
    expires: float | None  # monotonic; None: no lifetime
    last_value: Any = None


class CovReportingMixin:
    """SubscribeCOV and COV notifications for a simulated application."""

    cov_refused = False  # a device without COV: every SubscribeCOV is refused
    subscribe_requests = 0  # SubscribeCOV requests accepted (tests count renewals)

    def _cov_state(self) -> dict[tuple[Any, int, Any], _Subscription]:
        subs = self.__dict__.get("_cov_subs")
        if subs is None:
            subs = self.__dict__["_cov_subs"] = {}
        return subs

    async def do_SubscribeCOVRequest(self, apdu: Any) -> None:
        app: Any = self
        if self.cov_refused:
            raise ExecutionError(errorClass="services", errorCode="covSubscriptionFailed")
        object_id = apdu.monitoredObjectIdentifier
        obj = app.get_object_id(object_id)
        if obj is None:
            raise ExecutionError(errorClass="object", errorCode="unknownObject")
        key = (apdu.pduSource, int(apdu.subscriberProcessIdentifier), object_id)
        subs = self._cov_state()
        if apdu.issueConfirmedNotifications is None and apdu.lifetime is None:
            subs.pop(key, None)  # a cancellation
            await app.response(SimpleAckPDU(context=apdu))
            return
        lifetime = int(apdu.lifetime or 0)
        subs[key] = _Subscription(
            address=apdu.pduSource,
            process_id=key[1],
            object_id=object_id,
            confirmed=bool(apdu.issueConfirmedNotifications),
            expires=time.monotonic() + lifetime if lifetime else None,
        )
        self.subscribe_requests = self.subscribe_requests + 1
        await app.response(SimpleAckPDU(context=apdu))
        watcher = self.__dict__.get("_cov_watcher")
        if watcher is None or watcher.done():
            self.__dict__["_cov_watcher"] = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            try:
                self._check_all()
            except Exception:  # one bad object must not end the device's reporting
                log.exception("COV watcher")
            await asyncio.sleep(WATCH_S)

    def _check_all(self) -> None:
        app: Any = self
        now = time.monotonic()
        subs = self._cov_state()
        for key, sub in list(subs.items()):
            if sub.expires is not None and now >= sub.expires:
                del subs[key]
                continue
            obj = app.get_object_id(sub.object_id)
            value, flags = obj.presentValue, list(obj.statusFlags)
            if sub.last_value is not None:
                last_value, last_flags = sub.last_value
                if flags == last_flags and not _moved(obj, last_value, value):
                    continue
            sub.last_value = (value, flags)
            self._notify(obj, sub, value, now)

    def _notify(self, obj: Any, sub: _Subscription, value: Any, now: float) -> None:
        app: Any = self
        request = (
            ConfirmedCOVNotificationRequest()
            if sub.confirmed
            else UnconfirmedCOVNotificationRequest()
        )
        request.pduDestination = sub.address
        request.subscriberProcessIdentifier = sub.process_id
        request.initiatingDeviceIdentifier = app.device_object.objectIdentifier
        request.monitoredObjectIdentifier = sub.object_id
        request.timeRemaining = max(1, int(sub.expires - now)) if sub.expires else 0
        request.listOfValues = [
            PropertyValue(propertyIdentifier="presentValue", value=AnyValue(value)),
            PropertyValue(propertyIdentifier="statusFlags", value=AnyValue(obj.statusFlags)),
        ]
        future = app.request(request)
        if future is not None:  # confirmed: an unanswered one is simply lost
            future.add_done_callback(lambda f: f.cancelled() or f.exception())


def _moved(obj: Any, before: Any, now: Any) -> bool:
    increment = getattr(obj, "covIncrement", None)
    if increment is not None:
        return abs(float(now) - float(before)) >= float(increment)
    return bool(now != before)
