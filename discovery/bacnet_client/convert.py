"""bacpypes3 values and errors to plain Python: device strings, enumerations, status flags,
present values, and the reasons of error, reject and abort answers.

Runs on the loop thread; what comes out is plain (str, int, float) so that results pickle
without bacpypes3. ``bp`` arguments are the namespace of ``stack.load_stack()``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from discovery.bacnet_types import BACnetError

# --------------------------------------------------------------------------------------
# Value conversion (run on the loop thread, bacpypes3 values in, plain values out)
# --------------------------------------------------------------------------------------


def safe_text(value: Any) -> str:
    """A device string as a valid Python str: never raises, keeps NUL and odd characters.

    Lone surrogates (undecodable bytes) become U+FFFD; storage strips NUL and length."""
    if value is None:
        return ""
    try:
        # A plain str: bacpypes3's CharacterString subclass would drag bacpypes3 into
        # every pickle, and overrides encode().
        text = str.__str__(value) if isinstance(value, str) else str(value)
    except Exception:
        return ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def enum_text(value: Any) -> str:
    asn1 = getattr(value, "asn1", None)
    if isinstance(asn1, str):
        return asn1
    return safe_text(value)


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def is_property_error(bp: SimpleNamespace, value: Any) -> bool:
    return value is None or isinstance(value, bp.ErrorType | bp.ErrorRejectAbortNack)


def error_type_text(value: Any) -> str:
    if value is None:
        return "no value"
    error_class = getattr(value, "errorClass", None)
    error_code = getattr(value, "errorCode", None)
    if error_class is not None or error_code is not None:
        return f"{enum_text(error_class)}: {enum_text(error_code)}"
    return safe_text(value)


def status_flags_mask(value: Any) -> int | None:
    """StatusFlags bit string -> bit mask (in-alarm 1, fault 2, overridden 4, out-of-service 8)."""
    try:
        bits = list(value)
    except TypeError:
        return None
    mask = 0
    for position, bit in enumerate(bits[:4]):
        if bit:
            mask |= 1 << position
    return mask


def shortest_float32(number: float) -> float:
    """The shortest decimal that is the same single-precision REAL: 20.18, not 20.1800003.

    A BACnet REAL is 32 bits; printed as a 64-bit float it shows noise digits."""
    packed = struct.pack("<f", number)
    for digits in range(6, 10):
        candidate = float(f"{number:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return number


def convert_present_value(
    bp: SimpleNamespace, object_type: str, value: Any, state_texts: Sequence[str] = ()
) -> tuple[float | None, str]:
    """(value, text) for PointValue. See PointValue and docs/bacnet.md for the rules."""
    if isinstance(value, bp.Boolean | bool):
        return (1.0 if value else 0.0), ("true" if value else "false")
    if isinstance(value, bp.BinaryPV) or object_type.startswith("binary"):
        number = int_or_none(value)
        if number is None:
            return None, enum_text(value)
        index = 1 if number else 0
        default = ("inactive", "active")[index]
        text = state_texts[index] if len(state_texts) == 2 and state_texts[index] else default
        return float(index), text
    if isinstance(value, bp.Real | bp.Double | float):
        real = float(value)
        if math.isnan(real):
            return None, "nan"
        if math.isinf(real):
            return None, "inf" if real > 0 else "-inf"
        if isinstance(value, bp.Real):
            real = shortest_float32(real)
        return real, ""
    if isinstance(value, bp.Enumerated):
        return float(int(value)), enum_text(value)
    if isinstance(value, int):
        text = ""
        if object_type.startswith("multi-state") and 1 <= value <= len(state_texts):
            text = state_texts[value - 1]
        return float(value), text
    if isinstance(value, str):
        return None, safe_text(value)
    if isinstance(value, bp.Null):
        return None, "null"
    return None, safe_text(value)


# --------------------------------------------------------------------------------------
# Error conversion
# --------------------------------------------------------------------------------------


def nack_reason(bp: SimpleNamespace, exc: BaseException) -> str:
    if isinstance(exc, bp.RejectPDU):
        return f"reject: {enum_text(exc.apduAbortRejectReason)}"
    if isinstance(exc, bp.AbortPDU):
        return f"abort: {enum_text(exc.apduAbortRejectReason)}"
    return f"error {error_type_text(exc)}"


def is_too_big(error: BACnetError) -> bool:
    """The answer did not fit: split the request and try again."""
    return any(
        word in error.reason
        for word in ("segmentation-not-supported", "buffer-overflow", "apdu-too-long")
    )


def is_service_unsupported(error: BACnetError) -> bool:
    return any(word in error.reason for word in ("unrecognized-service", "service-request-denied"))
