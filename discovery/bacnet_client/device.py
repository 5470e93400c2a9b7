"""Per-device work on the loop thread: device properties, object list, point texts and
present values of one device, in ReadPropertyMultiple batches sized to what the device
accepts, falling back to ReadProperty when it rejects RPM or a batch does not fit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from discovery.bacnet_client.batching import (
    OBJECT_LIST_BATCH_CAP,
    OBJECT_LIST_ITEM_BYTES,
    OBJECT_TEXT_BYTES,
    POINT_OBJECT_TYPES,
    TEXT_BATCH_CAP,
    VALUE_BATCH_CAP,
    VALUE_BYTES,
    batch_size,
    batches,
)
from discovery.bacnet_client.convert import (
    convert_present_value,
    enum_text,
    error_type_text,
    int_or_none,
    is_property_error,
    is_service_unsupported,
    is_too_big,
    safe_text,
    status_flags_mask,
)
from discovery.bacnet_client.session import DeviceGone, Session, gather_all
from discovery.bacnet_types import (
    BACnetError,
    BACnetTimeout,
    DeviceProperties,
    DeviceReadResult,
    DeviceTarget,
    PointInfo,
    PointRef,
    PointValue,
)

_DEVICE_PROPERTIES = (
    ("name", "object-name"),
    ("vendor_id", "vendor-identifier"),
    ("vendor_name", "vendor-name"),
    ("model_name", "model-name"),
    ("firmware_revision", "firmware-revision"),
    ("application_software_version", "application-software-version"),
    ("description", "description"),
    ("location", "location"),
    ("protocol_revision", "protocol-revision"),
    ("max_apdu", "max-apdu-length-accepted"),
    ("segmentation", "segmentation-supported"),
)


class DeviceWork:
    """Enumeration and reads of one device (runs on the loop thread)."""

    def __init__(self, session: Session, supports_rpm: bool = True) -> None:
        self.s = session
        self.bp = session.bp
        self.supports_rpm = supports_rpm
        self.rpm_timed_out: BACnetTimeout | None = None

    async def _pipelined(
        self, batches: list[list[Any]], run: Callable[[list[Any]], Awaitable[None]]
    ) -> None:
        """The first batch alone (a silent device fails once, an RPM reject is learnt
        once), then the others with a few requests in flight (``Session.in_flight``)."""
        if not batches:
            return
        await run(batches[0])
        if self.supports_rpm and len(batches) > 1:
            await gather_all(run(batch) for batch in batches[1:])

    # -- device properties -------------------------------------------------------------

    async def device_properties(self) -> DeviceProperties:
        raw: dict[str, Any] = {}
        props = [prop for _, prop in _DEVICE_PROPERTIES]
        if self.supports_rpm:
            try:
                answer = await self.s.read_multiple([("device", self.s.instance, props)])
                for prop in props:
                    raw[prop] = answer.get(("device", self.s.instance, prop, None))
            except BACnetTimeout as exc:
                if self.s.answered:
                    raise
                # Silent to ReadPropertyMultiple: maybe to everything (then it fails on
                # its name below, one request more), maybe only to RPM: then ReadProperty.
                self.supports_rpm = False
                self.rpm_timed_out = exc
            except BACnetError as exc:
                if is_service_unsupported(exc):
                    self.supports_rpm = False
                # Otherwise too big, or a device failing the whole request for one
                # optional property: read them one by one (a missing device still fails,
                # on its name).
        if not raw:
            raw = await self._device_properties_one_by_one(props)
        return self._device_properties_from(raw)

    async def _device_properties_one_by_one(self, props: list[str]) -> dict[str, Any]:
        # The name first: a device that cannot answer it is not worth 10 more timeouts.
        raw = {"object-name": await self._read_or_error("device", self.s.instance, props[0])}
        if isinstance(raw["object-name"], BACnetError):
            raise raw["object-name"]  # every device object has a name: the device is the problem
        values = await gather_all(
            self._read_or_error("device", self.s.instance, prop) for prop in props[1:]
        )
        raw.update(zip(props[1:], values, strict=True))
        return raw

    async def _read_or_error(self, object_type: str, instance: int, prop: str) -> Any:
        try:
            return await self.s.read(object_type, instance, prop)
        except DeviceGone:
            raise
        except BACnetError as exc:
            return exc

    def _timed_out_for_good(self, exc: BACnetTimeout) -> bool:
        """Whether a timeout ends the device (it never answered, or it stopped) rather
        than the one request (a device that still answers: retry smaller)."""
        return isinstance(exc, DeviceGone) or not self.s.answered

    def _device_properties_from(self, raw: dict[str, Any]) -> DeviceProperties:
        props = DeviceProperties(supports_rpm=self.supports_rpm)
        for attr, prop in _DEVICE_PROPERTIES:
            value = raw.get(prop)
            if isinstance(value, BaseException) or is_property_error(self.bp, value):
                continue
            if attr in ("vendor_id", "protocol_revision", "max_apdu"):
                setattr(props, attr, int_or_none(value))
            elif attr == "segmentation":
                props.segmentation = enum_text(value)
            else:
                setattr(props, attr, safe_text(value))
        return props

    # -- object list ---------------------------------------------------------------------

    async def object_list(self, props: DeviceProperties) -> list[tuple[str, int]]:
        try:
            value = await self.s.read("device", self.s.instance, "object-list")
            return [(enum_text(oid[0]), int(oid[1])) for oid in value]
        except BACnetTimeout:
            raise
        except BACnetError as exc:
            if not is_too_big(exc):
                raise
        # Too big for one APDU (a device that cannot segment, or beyond our own limit):
        # read its length (index 0), then the elements.
        count = int(await self.s.read("device", self.s.instance, "object-list", 0))
        indexes = list(range(1, count + 1))
        found: dict[int, tuple[str, int]] = {}
        if self.supports_rpm:
            size = batch_size(
                OBJECT_LIST_ITEM_BYTES, props.max_apdu, props.segmentation, OBJECT_LIST_BATCH_CAP
            )
            await self._pipelined(
                batches(indexes, size), lambda batch: self._object_list_batch(batch, found)
            )
        missing = [i for i in indexes if i not in found]
        if missing:
            values = await gather_all(self._object_list_element(i) for i in missing)
            for index, value in zip(missing, values, strict=True):
                if value is not None:
                    found[index] = value
        return [found[i] for i in indexes if i in found]

    async def _object_list_element(self, index: int) -> tuple[str, int] | None:
        oid = await self.s.read("device", self.s.instance, "object-list", index)
        return (enum_text(oid[0]), int(oid[1]))

    async def _object_list_batch(self, batch: list[int], found: dict[int, tuple[str, int]]) -> None:
        try:
            answer = await self.s.read_multiple(
                [("device", self.s.instance, [("object-list", i) for i in batch])]
            )
        except BACnetTimeout as exc:
            if self._timed_out_for_good(exc) or len(batch) == 1:
                raise
            # A busy device that still answers: the usual halving, smaller requests.
            half = len(batch) // 2
            await self._object_list_batch(batch[:half], found)
            await self._object_list_batch(batch[half:], found)
            return
        except BACnetError as exc:
            if is_service_unsupported(exc):
                self.supports_rpm = False
                return
            if is_too_big(exc) and len(batch) > 1:
                half = len(batch) // 2
                await self._object_list_batch(batch[:half], found)
                await self._object_list_batch(batch[half:], found)
                return
            raise
        for (_t, _i, _p, index), oid in answer.items():
            if index is not None and not is_property_error(self.bp, oid):
                found[index] = (enum_text(oid[0]), int(oid[1]))

    # -- object texts --------------------------------------------------------------------

    @staticmethod
    def text_properties(object_type: str) -> list[str]:
        props = ["object-name", "description"]
        if object_type.startswith("binary"):
            props += ["inactive-text", "active-text"]
        elif object_type.startswith("multi-state"):
            props += ["state-text"]
        elif object_type not in ("characterstring-value",):
            props += ["units"]
        return props

    async def points(
        self,
        objects: Iterable[tuple[str, int]],
        props: DeviceProperties,
        known: frozenset[tuple[str, int]] = frozenset(),
        only_new: bool = False,
    ) -> list[PointInfo]:
        """Texts of the point objects, those not ``known`` yet first (or only them): an
        enumeration cut short (``partial_points()``) still adds new points, and the next
        one goes on."""
        wanted = [(t, i) for t, i in objects if t in POINT_OBJECT_TYPES]
        if only_new:
            wanted = [obj for obj in wanted if obj not in known]
        wanted.sort(key=lambda obj: obj in known)  # stable: device order otherwise
        raw: dict[tuple[str, int], dict[str, Any]] = {obj: {} for obj in wanted}
        self._texts = raw
        if self.supports_rpm:
            size = batch_size(OBJECT_TEXT_BYTES, props.max_apdu, props.segmentation, TEXT_BATCH_CAP)
            await self._pipelined(
                batches(wanted, size), lambda batch: self._texts_batch(batch, raw)
            )
        pending = [obj for obj in wanted if not raw[obj]]
        if pending:
            await gather_all(self._texts_one_by_one(obj, raw) for obj in pending)
        return [self._point_from(obj, raw[obj]) for obj in wanted]

    def partial_points(self) -> list[PointInfo]:
        """The points whose texts were read before the enumeration stopped."""
        texts = getattr(self, "_texts", {})
        return [self._point_from(obj, raw) for obj, raw in texts.items() if raw]

    async def _texts_batch(
        self, batch: list[tuple[str, int]], raw: dict[tuple[str, int], dict[str, Any]]
    ) -> None:
        def store(_part: list[tuple[str, int]], answer: dict[tuple, Any]) -> None:
            for (object_type, instance, prop, _index), value in answer.items():
                key = (object_type, instance)
                if key in raw:
                    raw[key][prop] = value

        # A single object that still fails is read property by property later.
        await self._rpm_in_halves(
            batch,
            lambda part: [(t, i, self.text_properties(t)) for t, i in part],
            store,
            on_single_failure=lambda obj, exc: None,
        )

    async def _rpm_in_halves(
        self,
        batch: list[Any],
        specs_of: Callable[[list[Any]], list[Any]],
        store: Callable[[list[Any], dict[tuple, Any]], None],
        on_single_failure: Callable[[Any, BACnetError], None],
    ) -> None:
        """ReadPropertyMultiple of ``batch``; a batch the device refuses (too big, or one
        object it chokes on) is halved until it fits. A device that does not support RPM
        is marked so (the caller falls back to ReadProperty). A timeout ends the device
        when it never answered or has stopped answering (``Session`` probes it once);
        a device that still answers gets the batch again in halves."""
        try:
            answer = await self.s.read_multiple(specs_of(batch))
        except BACnetTimeout as exc:
            if self._timed_out_for_good(exc):
                raise
            if len(batch) > 1:
                half = len(batch) // 2
                await self._rpm_in_halves(batch[:half], specs_of, store, on_single_failure)
                await self._rpm_in_halves(batch[half:], specs_of, store, on_single_failure)
            else:
                on_single_failure(batch[0], exc)
            return
        except BACnetError as exc:
            if is_service_unsupported(exc):
                self.supports_rpm = False
            elif len(batch) > 1:
                half = len(batch) // 2
                await self._rpm_in_halves(batch[:half], specs_of, store, on_single_failure)
                await self._rpm_in_halves(batch[half:], specs_of, store, on_single_failure)
            else:
                on_single_failure(batch[0], exc)
            return
        store(batch, answer)

    async def _texts_one_by_one(
        self, obj: tuple[str, int], raw: dict[tuple[str, int], dict[str, Any]]
    ) -> None:
        props = self.text_properties(obj[0])
        values = await gather_all(self._read_or_error(obj[0], obj[1], p) for p in props)
        raw[obj] = dict(zip(props, values, strict=True))
        if all(isinstance(v, BACnetTimeout) for v in values):
            raise values[0]

    def _point_from(self, obj: tuple[str, int], raw: dict[str, Any]) -> PointInfo:
        def ok(prop: str) -> Any:
            value = raw.get(prop)
            if isinstance(value, BaseException) or is_property_error(self.bp, value):
                return None
            return value

        point = PointInfo(object_type=obj[0], instance=obj[1])
        point.name = safe_text(ok("object-name"))
        point.description = safe_text(ok("description"))
        units = ok("units")
        point.units = enum_text(units) if units is not None else ""
        if obj[0].startswith("binary"):
            point.state_texts = [safe_text(ok("inactive-text")), safe_text(ok("active-text"))]
            if not any(point.state_texts):
                point.state_texts = []
        elif obj[0].startswith("multi-state"):
            texts = ok("state-text")
            if texts is not None:
                try:
                    point.state_texts = [safe_text(t) for t in texts]
                except TypeError:
                    point.state_texts = []
        return point

    # -- present values ------------------------------------------------------------------

    async def read_values(self, target: DeviceTarget, result: DeviceReadResult) -> None:
        """Fill ``result.values`` (in ``target.points`` order) as batches complete."""
        refs = list(target.points)
        values: dict[PointRef, PointValue] = {}
        if self.supports_rpm:
            size = batch_size(VALUE_BYTES, target.max_apdu, target.segmentation, VALUE_BATCH_CAP)

            async def one_batch(batch: list[PointRef]) -> None:
                # A timeout reaching here ends the device: it never answered, or it
                # stopped (then the points read so far are kept, see _read_one).
                await self._values_batch(batch, values)
                # Kept current so that a device deadline keeps what was read.
                result.values = [values[r] for r in refs if r in values]

            await self._pipelined(batches(refs, size), one_batch)
        result.supports_rpm = self.supports_rpm
        pending = [r for r in refs if r not in values]
        if pending:
            if not self.s.answered:
                # Probe with the first point so a silent device costs one deadline only.
                values[pending[0]] = await self._value_one(pending[0], raise_timeout=True)
                pending = pending[1:]
            read = await gather_all(self._value_one(r) for r in pending)
            values.update(zip(pending, read, strict=True))
        result.values = [values[r] for r in refs]

    def _point_error(self, ref: PointRef, exc: BACnetError) -> PointValue:
        return PointValue(object_type=ref.object_type, instance=ref.instance, error=str(exc))

    async def _values_batch(
        self, batch: list[PointRef], values: dict[PointRef, PointValue]
    ) -> None:
        def store(part: list[PointRef], answer: dict[tuple, Any]) -> None:
            for ref in part:
                values[ref] = self._point_value(
                    ref,
                    answer.get((ref.object_type, ref.instance, "present-value", None)),
                    answer.get((ref.object_type, ref.instance, "status-flags", None)),
                )

        def record_error(ref: PointRef, exc: BACnetError) -> None:
            values[ref] = self._point_error(ref, exc)

        await self._rpm_in_halves(
            batch,
            lambda part: [
                (r.object_type, r.instance, ["present-value", "status-flags"]) for r in part
            ],
            store,
            record_error,
        )

    def _point_value(self, ref: PointRef, present: Any, flags: Any) -> PointValue:
        point = PointValue(object_type=ref.object_type, instance=ref.instance)
        if isinstance(present, BaseException) or is_property_error(self.bp, present):
            reason = str(present) if isinstance(present, BACnetError) else error_type_text(present)
            point.error = self.s.where(f"{ref.object_type},{ref.instance} present-value: {reason}")
        else:
            try:
                point.value, point.text = convert_present_value(
                    self.bp, ref.object_type, present, getattr(ref, "state_texts", ())
                )
            except Exception as exc:
                point.error = self.s.where(
                    f"{ref.object_type},{ref.instance} present-value: "
                    f"{type(exc).__name__}: {safe_text(exc)}"
                )
        if not (isinstance(flags, BaseException) or is_property_error(self.bp, flags)):
            point.status_flags = status_flags_mask(flags)
        return point

    async def _value_one(self, ref: PointRef, raise_timeout: bool = False) -> PointValue:
        try:
            present = await self.s.read(ref.object_type, ref.instance, "present-value")
        except BACnetTimeout as exc:
            if raise_timeout or isinstance(exc, DeviceGone):
                raise
            return self._point_error(ref, exc)
        except BACnetError as exc:
            return self._point_error(ref, exc)
        try:
            flags = await self.s.read(ref.object_type, ref.instance, "status-flags")
        except DeviceGone:
            raise
        except BACnetError:
            flags = None
        return self._point_value(ref, present, flags)


def with_state_texts(ref: PointRef, state_texts: Sequence[str]) -> PointRef:
    """A PointRef carrying the point's state texts, for readable binary/multi-state text."""
    return replace(ref, state_texts=tuple(state_texts))
