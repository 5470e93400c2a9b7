"""The device deadline: everything done for one device within a bound that grows with
the work (its points or objects), so a big device gets the time it needs and a stuck
one still ends. The message names the setting to change."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from discovery.bacnet_client.config import ClientConfig
from discovery.bacnet_types import BACnetTimeout

# Time allowed per item on top of BACNET_DEVICE_DEADLINE_S: reads at 100 points/s and
# point texts at 50 objects/s, several times slower than the slowest measured on a
# loaded 2-core machine (about 500 values/s and 400 objects/s, docs/bacnet.md).
READ_S_PER_POINT = 0.01
ENUMERATE_S_PER_OBJECT = 0.02
# The growth stops at this many times the base deadline: a device that claims millions
# of objects still ends.
MOST_GROWTH = 10


class DeviceDeadline:
    """One device's deadline; ``grow()`` once the amount of work is known."""

    def __init__(self, config: ClientConfig, instance: int) -> None:
        self.base = config.device_deadline_s
        self.instance = instance
        self.extra = 0.0
        self.items = 0
        self.what = ""
        self._scope: asyncio.Timeout | None = None
        self._started = 0.0

    @property
    def seconds(self) -> float:
        return self.base + self.extra

    @staticmethod
    def most(config: ClientConfig) -> float:
        """The longest a device deadline can become (for callers' overall limits)."""
        return config.device_deadline_s * (1 + MOST_GROWTH)

    def grow(self, items: int, per_item_s: float, what: str) -> None:
        self.items, self.what = items, what
        self.extra = min(items * per_item_s, self.base * MOST_GROWTH)
        if self._scope is not None:
            self._scope.reschedule(self._started + self.seconds)

    def message(self) -> str:
        grown = f" + {self.extra:.0f} s for {self.items} {self.what}" if self.extra else ""
        return (
            f"device {self.instance}: not finished within its {self.seconds:.0f} s deadline "
            f"(BACNET_DEVICE_DEADLINE_S {self.base:g} s{grown}); raise "
            "BACNET_DEVICE_DEADLINE_S for big or slow devices"
        )


@contextlib.asynccontextmanager
async def device_deadline(
    config: ClientConfig, instance: int, items: int = 0, per_item_s: float = 0.0, what: str = ""
) -> AsyncIterator[DeviceDeadline]:
    """``async with device_deadline(...) as deadline:`` the device's work; raises
    BACnetTimeout (reason "device deadline") when it runs out."""
    deadline = DeviceDeadline(config, instance)
    if items:
        deadline.grow(items, per_item_s, what)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(deadline.seconds) as scope:
            deadline._scope, deadline._started = scope, loop.time()
            yield deadline
    except TimeoutError:
        raise BACnetTimeout(deadline.message(), device=instance, reason="device deadline") from None
