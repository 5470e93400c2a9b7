"""Who-Is and the I-Ams that answer it.

bacpypes3's own ``who_is()`` always waits its whole timeout even when every device
answered in the first 50 ms. This sends the Who-Is itself, listens to the I-Ams the
runtime records, and returns once the network has been quiet. A busy device can drop a
single broadcast: the Who-Is goes out again halfway through the first quiet window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from discovery.bacnet_types import BACnetError, DiscoveredDevice, DiscoveryResult

if TYPE_CHECKING:
    from discovery.bacnet_client.runtime import ClientRuntime, IAmSeen

log = logging.getLogger(__name__)


async def who_is(
    client: ClientRuntime, low: int | None, high: int | None, targets: list[str], max_s: float
) -> DiscoveryResult:
    """Send the Who-Is (twice: see the module docstring) and collect the I-Ams until the
    network has been quiet, ``max_s`` has passed, or every directed target answered."""
    bp = client.bp
    started = time.monotonic()
    seen: list[IAmSeen] = []
    arrived = asyncio.Event()
    own = client.local_address

    def listener(iam: IAmSeen) -> None:
        if iam.address == own:
            return
        if low is not None and not (low <= iam.instance <= high):  # type: ignore[operator]
            return
        seen.append(iam)
        arrived.set()

    destinations: list[Any] = []
    for target in targets:
        try:
            destinations.append(bp.Address(target))
        except Exception as exc:
            raise BACnetError(f"bad Who-Is target address {target!r}: {exc}") from None
    if not destinations:
        destinations.append(bp.GlobalBroadcast())
    wanted = {str(d) for d in destinations} if targets else set()

    def send_who_is() -> None:
        for destination in destinations:
            request = bp.WhoIsRequest(destination=destination)
            if low is not None:
                request.deviceInstanceRangeLowLimit = low
                request.deviceInstanceRangeHighLimit = high
            client.application.request(request)

    with client.i_am_listener(listener):
        send_who_is()
        sent = time.monotonic()
        # A busy device can drop one broadcast: the Who-Is goes out again halfway
        # through the first quiet window (answers to both count once per address).
        resend_at: float | None = sent + client.config.discovery_quiet_s / 2
        while True:
            now = time.monotonic()
            if resend_at is not None and now >= resend_at:
                send_who_is()
                resend_at = None
            last = seen[-1].at if seen else sent
            quiet_left = last + client.config.discovery_quiet_s - now
            max_left = started + max_s - now
            if wanted and wanted <= {s.address for s in seen}:
                break
            # A target asked by address is waited for up to the discovery limit: one
            # that answers late is slow, not absent. The quiet window ends the rest.
            if (quiet_left <= 0 and not wanted) or max_left <= 0:
                break
            arrived.clear()
            wait_s = max_left if wanted else min(quiet_left, max_left)
            if resend_at is not None:
                wait_s = min(wait_s, max(resend_at - now, 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), wait_s)

    answers: dict[int, dict[str, DiscoveredDevice]] = {}
    for iam in seen:
        answers.setdefault(iam.instance, {}).setdefault(
            iam.address,
            DiscoveredDevice(
                instance=iam.instance,
                address=iam.address,
                network_number=iam.network_number,
                vendor_id=iam.vendor_id,
                max_apdu=iam.max_apdu,
                segmentation=iam.segmentation,
            ),
        )
    duplicates = {i: list(a) for i, a in answers.items() if len(a) > 1}
    for instance, where in duplicates.items():
        log.warning("BACnet device instance %s answered from %s", instance, ", ".join(where))
    return DiscoveryResult(
        devices=[next(iter(answers[i].values())) for i in sorted(answers)],
        duplicates=duplicates,
        elapsed_s=time.monotonic() - started,
        answers={i: list(answers[i].values()) for i in duplicates},
    )
