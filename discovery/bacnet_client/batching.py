"""What is a point, and how many items one ReadPropertyMultiple may ask a device for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Object types whose present value the product reads. Others (device, network-port,
# file, proprietary types, ...) are not points and are left out of enumeration.
POINT_OBJECT_TYPES = frozenset(
    {
        "analog-input",
        "analog-output",
        "analog-value",
        "binary-input",
        "binary-output",
        "binary-value",
        "multi-state-input",
        "multi-state-output",
        "multi-state-value",
        "accumulator",
        "pulse-converter",
        "loop",
        "integer-value",
        "positive-integer-value",
        "large-analog-value",
        "characterstring-value",
        "binary-lighting-output",
        "lighting-output",
    }
)

# Rough encoded sizes (bytes) of one item in an acknowledgement, used to size
# ReadPropertyMultiple batches so that the answer fits one APDU for devices that cannot
# segment. Oversized batches are split again when a device says so anyway.
VALUE_BYTES = 24  # object id, present-value (REAL), status-flags, tags
OBJECT_LIST_ITEM_BYTES = 12  # property id, array index, object id, tags
OBJECT_TEXT_BYTES = 120  # name, description, units or state texts
_APDU_HEADER_BYTES = 12
VALUE_BATCH_CAP = 100  # measured best on segmenting devices (BACNET_NOTES)
TEXT_BATCH_CAP = 40
OBJECT_LIST_BATCH_CAP = 100


def batches(items: Sequence[Any], size: int) -> list[list[Any]]:
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _segments_answers(segmentation: str | None) -> bool:
    """Whether a device can send segmented acknowledgements."""
    return segmentation in ("segmented-both", "segmented-transmit")


def batch_size(per_item: int, max_apdu: int | None, segmentation: str | None, cap: int) -> int:
    """How many items one ReadPropertyMultiple may ask a device for."""
    if _segments_answers(segmentation):
        return cap
    usable = (max_apdu or 480) - _APDU_HEADER_BYTES
    return max(1, min(cap, usable // per_item))
