"""bacpypes3 objects of the simulated devices, built from the plain `spec` plan.

Present values are Python properties computed at read time from `PointSpec.value_at`,
so a reading is a deterministic function of the clock (tests can check plausibility).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bacpypes3.basetypes import (
    EngineeringUnits,
    OptionalUnsigned,
    PriorityArray,
    PriorityValue,
    Segmentation,
    StatusFlags,
)
from bacpypes3.constructeddata import ArrayOf
from bacpypes3.errors import ExecutionError
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.object import Object as LocalObject
from bacpypes3.object import (
    AnalogInputObject as _AnalogInputObject,
)
from bacpypes3.object import (
    AnalogOutputObject as _AnalogOutputObject,
)
from bacpypes3.object import (
    AnalogValueObject as _AnalogValueObject,
)
from bacpypes3.object import (
    BinaryInputObject as _BinaryInputObject,
)
from bacpypes3.object import (
    BinaryOutputObject as _BinaryOutputObject,
)
from bacpypes3.object import (
    BinaryValueObject as _BinaryValueObject,
)
from bacpypes3.object import (
    MultiStateInputObject as _MultiStateInputObject,
)
from bacpypes3.object import (
    MultiStateOutputObject as _MultiStateOutputObject,
)
from bacpypes3.object import (
    MultiStateValueObject as _MultiStateValueObject,
)
from bacpypes3.primitivedata import Null, ObjectIdentifier

from .spec import DeviceSpec, PointSpec

# bacpypes3 registers object classes per vendor; 999 is the one its own local (sample)
# classes use, where re-registering a type is silently ignored.
_vendor_id = 999

ArrayOfObjectIdentifier = ArrayOf(ObjectIdentifier)


class _PointMixin:
    """Present value from the point's function of time."""

    _point: PointSpec
    get_property_type: Callable[[str], Any]  # from the bacpypes3 object class mixed in

    def _get_present_value(self) -> Any:
        # Typed (Real, BinaryPV, Unsigned): the encoder does not guess from Python types.
        datatype = self.get_property_type("presentValue")
        return datatype(self._point.value_at(time.time()))

    def _set_present_value(self, value: Any) -> None:
        # Writes are accepted and ignored: the simulated process owns the value.
        pass

    def _get_status_flags(self) -> StatusFlags:
        # bacpypes3 derives the flags from event state / reliability / out-of-service
        # and never sets "overridden"; the simulator states them outright.
        flags = [int(flag) for flag in self._point.status_flags]
        limit = self._point.high_limit
        if limit is not None and float(self._point.value_at(time.time())) > limit:
            flags[0] = 1  # in alarm: out of range
        return StatusFlags(flags)

    def _set_status_flags(self, value: Any) -> None:
        pass


_pv = property(_PointMixin._get_present_value, _PointMixin._set_present_value)
_sf = property(_PointMixin._get_status_flags, _PointMixin._set_status_flags)


class _CommandableMixin(_PointMixin):
    """A commandable point (clause 19.2): 16 priority slots over the relinquish default,
    which is the point's function of time. Written values live in the slots until they
    are relinquished (a NULL write at that priority); the highest priority set wins.

    Written by hand rather than with bacpypes3's ``Commandable`` because the present
    value here is computed at read time, which ``Commandable`` assigns instead."""

    _slots: dict[int, Any]
    _point: PointSpec

    def _slot_map(self) -> dict[int, Any]:
        if "_slots" not in self.__dict__:
            self.__dict__["_slots"] = {}
        return self.__dict__["_slots"]

    def _get_present_value(self) -> Any:
        slots = self._slot_map()
        if slots:
            return slots[min(slots)]
        return super()._get_present_value()

    def _get_priority_array(self) -> Any:
        slots = self._slot_map()
        return PriorityArray(
            [
                PriorityValue(slots[i]) if i in slots else PriorityValue(null=())
                for i in range(1, 17)
            ]
        )

    def _get_relinquish_default(self) -> Any:
        return _PointMixin._get_present_value(self)

    def _get_current_priority(self) -> Any:
        slots = self._slot_map()
        return OptionalUnsigned(unsigned=min(slots)) if slots else OptionalUnsigned(null=())

    def _get_min(self) -> Any:
        low = self._point.min_present_value
        return None if low is None else self.get_property_type("minPresValue")(low)

    def _get_max(self) -> Any:
        high = self._point.max_present_value
        return None if high is None else self.get_property_type("maxPresValue")(high)

    def _ignore(self, value: Any) -> None:
        pass

    async def write_property(
        self, attr: Any, value: Any, index: int | None = None, priority: int | None = None
    ) -> None:
        if isinstance(attr, int):
            attr = self._property_identifier_class(attr).attr  # type: ignore[attr-defined]
        if attr != "presentValue":
            raise ExecutionError(errorClass="property", errorCode="writeAccessDenied")
        if self._point.write_denied:
            raise ExecutionError(errorClass="property", errorCode="writeAccessDenied")
        priority = 16 if priority is None else priority
        if not 1 <= priority <= 16:
            raise ExecutionError(errorClass="property", errorCode="valueOutOfRange")
        slots = self._slot_map()
        if isinstance(value, Null):
            slots.pop(priority, None)
            return
        datatype = self.get_property_type("presentValue")
        try:
            typed = value if isinstance(value, datatype) else datatype(datatype.cast(value))
        except Exception:
            raise ExecutionError(errorClass="property", errorCode="invalidDataType") from None
        if not self._in_range(typed):
            raise ExecutionError(errorClass="property", errorCode="valueOutOfRange")
        slots[priority] = typed

    def _in_range(self, value: Any) -> bool:
        point = self._point
        if point.is_analog:
            number = float(value)
            low, high = point.min_present_value, point.max_present_value
            return (low is None or number >= low) and (high is None or number <= high)
        if point.is_binary:
            return True
        return 1 <= int(value) <= max(len(point.state_texts), 1)


_pv = property(_PointMixin._get_present_value, _PointMixin._set_present_value)
_sf = property(_PointMixin._get_status_flags, _PointMixin._set_status_flags)
_cpv = property(_CommandableMixin._get_present_value, _CommandableMixin._ignore)
_pa = property(_CommandableMixin._get_priority_array, _CommandableMixin._ignore)
_rd = property(_CommandableMixin._get_relinquish_default, _CommandableMixin._ignore)
_ccp = property(_CommandableMixin._get_current_priority, _CommandableMixin._ignore)
_min = property(_CommandableMixin._get_min, _CommandableMixin._ignore)
_max = property(_CommandableMixin._get_max, _CommandableMixin._ignore)


class SimAnalogInput(_PointMixin, LocalObject, _AnalogInputObject):
    presentValue = _pv
    statusFlags = _sf


class SimAnalogValue(_CommandableMixin, LocalObject, _AnalogValueObject):
    presentValue = _cpv
    statusFlags = _sf
    priorityArray = _pa
    relinquishDefault = _rd
    currentCommandPriority = _ccp
    minPresValue = _min
    maxPresValue = _max


class SimBinaryInput(_PointMixin, LocalObject, _BinaryInputObject):
    presentValue = _pv
    statusFlags = _sf


class SimBinaryValue(_CommandableMixin, LocalObject, _BinaryValueObject):
    presentValue = _cpv
    statusFlags = _sf
    priorityArray = _pa
    relinquishDefault = _rd
    currentCommandPriority = _ccp


class SimMultiStateInput(_PointMixin, LocalObject, _MultiStateInputObject):
    presentValue = _pv
    statusFlags = _sf


class SimMultiStateValue(_CommandableMixin, LocalObject, _MultiStateValueObject):
    presentValue = _cpv
    statusFlags = _sf
    priorityArray = _pa
    relinquishDefault = _rd
    currentCommandPriority = _ccp


class SimAnalogOutput(_CommandableMixin, LocalObject, _AnalogOutputObject):
    presentValue = _cpv
    statusFlags = _sf
    priorityArray = _pa
    relinquishDefault = _rd
    currentCommandPriority = _ccp
    minPresValue = _min
    maxPresValue = _max


class SimBinaryOutput(_CommandableMixin, LocalObject, _BinaryOutputObject):
    presentValue = _cpv
    statusFlags = _sf
    priorityArray = _pa
    relinquishDefault = _rd
    currentCommandPriority = _ccp


class SimMultiStateOutput(_CommandableMixin, LocalObject, _MultiStateOutputObject):
    presentValue = _cpv
    statusFlags = _sf
    priorityArray = _pa
    relinquishDefault = _rd
    currentCommandPriority = _ccp


_CLASSES: dict[str, type] = {
    "analog-output": SimAnalogOutput,
    "binary-output": SimBinaryOutput,
    "multi-state-output": SimMultiStateOutput,
    "analog-input": SimAnalogInput,
    "analog-value": SimAnalogValue,
    "binary-input": SimBinaryInput,
    "binary-value": SimBinaryValue,
    "multi-state-input": SimMultiStateInput,
    "multi-state-value": SimMultiStateValue,
}


class SimDeviceObject(DeviceObject):
    """A device object whose object list is fixed when the device is built.

    The simulated applications create point objects lazily (see `SimApplication`), so
    the list cannot come from the application's object table."""

    _object_ids: list[ObjectIdentifier] | None = None
    _cached_object_list: Any = None

    @property
    def objectList(self) -> Any:
        if self._cached_object_list is None:
            ids = self._object_ids or [self.objectIdentifier]
            self._cached_object_list = ArrayOfObjectIdentifier(list(ids))
        return self._cached_object_list

    @objectList.setter
    def objectList(self, value: Any) -> None:
        pass


def point_identifier(point: PointSpec) -> ObjectIdentifier:
    return ObjectIdentifier((point.object_type, point.instance))


def _hyphen_to_enum_attr(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(part.capitalize() for part in rest)


def make_point_object(point: PointSpec) -> LocalObject:
    cls = _CLASSES[point.object_type]
    kwargs: dict[str, Any] = {
        "objectIdentifier": (point.object_type, point.instance),
        "objectName": point.name,
        "description": point.description,
        "eventState": "normal",
        "outOfService": bool(point.status_flags[3]),
        "reliability": "unreliable-other" if point.status_flags[1] else "no-fault-detected",
    }
    if point.is_analog:
        kwargs["units"] = EngineeringUnits(_hyphen_to_enum_attr(point.units or "no-units"))
        kwargs["covIncrement"] = 0.1
    elif point.is_binary:
        kwargs["inactiveText"] = point.inactive_text
        kwargs["activeText"] = point.active_text
        if point.object_type in ("binary-input", "binary-output"):
            kwargs["polarity"] = "normal"
    else:
        kwargs["numberOfStates"] = len(point.state_texts)
        kwargs["stateText"] = list(point.state_texts)
    obj = cls(**kwargs)
    obj._point = point
    return obj


def make_device_object(dev: DeviceSpec) -> SimDeviceObject:
    segmentation = Segmentation(_hyphen_to_enum_attr(dev.segmentation))
    return SimDeviceObject(
        objectIdentifier=("device", dev.instance),
        objectName=dev.name,
        vendorIdentifier=dev.vendor_id,
        vendorName=dev.vendor_name,
        modelName=dev.model_name,
        firmwareRevision=dev.firmware_revision,
        applicationSoftwareVersion=dev.application_software_version,
        description=dev.description,
        location=dev.location,
        protocolVersion=1,
        protocolRevision=dev.protocol_revision,
        maxApduLengthAccepted=dev.max_apdu,
        segmentationSupported=segmentation,
        maxSegmentsAccepted=64 if dev.segmentation != "no-segmentation" else 1,
        systemStatus="operational",
        databaseRevision=1,
    )
