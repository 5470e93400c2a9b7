"""Commanding points over the REST API: write, relinquish, the priority array, the
active overrides and the audit trail (read-only: no endpoint edits or deletes it).

The same service functions as the point page; a user without the
``discovery.command_point`` permission gets 403 on every write."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from discovery.api.pagination import CappedLimitOffsetPagination
from discovery.models import BACnetPoint, BACnetTask, PointCommand, PointCommandState
from discovery.services import commanding
from discovery.sites import scoped, visible_points


class PointCommandSerializer(serializers.ModelSerializer):
    job = serializers.IntegerField(source="task_id", read_only=True, allow_null=True)
    user = serializers.CharField(source="username", read_only=True)

    class Meta:
        model = PointCommand
        fields = [
            "id", "point", "device_instance", "object_type", "object_instance", "point_name",
            "user", "created_at", "action", "value", "value_text", "priority", "expires_at",
            "reason", "job", "result", "message", "confirmed_at", "finished_at",
            "read_back_value", "read_back_text", "read_back_priority", "read_back_slots",
            "override_state", "override_ended_at", "override_ended_by", "alarm",
        ]  # fmt: skip
        read_only_fields = fields


class CommandStateSerializer(serializers.ModelSerializer):
    class Meta:
        model = PointCommandState
        fields = [
            "point", "read_at", "commandable", "present_value", "present_text", "slots",
            "current_priority", "relinquish_default", "relinquish_default_text",
            "min_present_value", "max_present_value", "number_of_states", "error",
        ]  # fmt: skip
        read_only_fields = fields


class WriteSerializer(serializers.Serializer):
    """``value``: a number (analog), active/inactive (binary), a state number or name
    (multi-state). ``duration`` (30m, 1h, 4h) or ``expires_at`` make a timed override."""

    value = serializers.CharField(max_length=64)
    priority = serializers.IntegerField(default=commanding.DEFAULT_PRIORITY)
    duration = serializers.ChoiceField(
        choices=list(commanding.DURATIONS), required=False, allow_blank=True
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class RelinquishSerializer(serializers.Serializer):
    priority = serializers.IntegerField(default=commanding.DEFAULT_PRIORITY)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


def _point(request: Request, pk: int) -> BACnetPoint:
    # A user limited to some sites finds only their points (404 for the others).
    return get_object_or_404(visible_points(request.user), pk=pk)


def _require_permission(request: Request) -> None:
    if not commanding.can_command(request.user):
        raise PermissionDenied("You may not command points (the Operators group may).")


class PointWriteView(APIView):
    @extend_schema(request=WriteSerializer, responses={202: PointCommandSerializer})
    def post(self, request: Request, pk: int) -> Response:
        """Write the point's present value at a priority (default 8); 202 with the audit
        row, whose ``job`` carries the write (follow it at ``/api/jobs/<job>/``)."""
        _require_permission(request)
        point = _point(request, pk)
        incoming = WriteSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        try:
            expires = commanding.expiry(data.get("duration") or None, data.get("expires_at"))
            command = commanding.request_write(
                point,
                data["value"],
                data["priority"],
                user=request.user,
                reason=data["reason"],
                expires_at=expires,
                trigger=BACnetTask.Trigger.API,
            )
        except commanding.CommandRefused as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        return Response(PointCommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)


class PointRelinquishView(APIView):
    @extend_schema(request=RelinquishSerializer, responses={202: PointCommandSerializer})
    def post(self, request: Request, pk: int) -> Response:
        """Relinquish a priority (write NULL); 202 with the audit row."""
        _require_permission(request)
        point = _point(request, pk)
        incoming = RelinquishSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        try:
            command = commanding.request_relinquish(
                point,
                incoming.validated_data["priority"],
                user=request.user,
                reason=incoming.validated_data["reason"],
                trigger=BACnetTask.Trigger.API,
            )
        except commanding.CommandRefused as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        return Response(PointCommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)


class PointPriorityArrayView(APIView):
    @extend_schema(responses={200: CommandStateSerializer})
    def get(self, request: Request, pk: int) -> Response:
        """The priority array last read from the device (404 when never read)."""
        state = get_object_or_404(PointCommandState, point=_point(request, pk))
        return Response(CommandStateSerializer(state).data)

    @extend_schema(request=None, responses={202: None})
    def post(self, request: Request, pk: int) -> Response:
        """Read it fresh from the device: 202 with the job."""
        try:
            task = commanding.request_priority_read(_point(request, pk), user=request.user)
        except commanding.CommandRefused as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        return Response({"job": task.pk}, status=status.HTTP_202_ACCEPTED)


class CommandViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit trail: every write and relinquish request, newest first. Filters
    ``user`` (contains), ``device_instance``, ``point``, ``action``, ``result``,
    ``start``/``end`` (dates). ``end/`` ends an active timed override now."""

    serializer_class = PointCommandSerializer
    pagination_class = CappedLimitOffsetPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        from discovery.views.commanding import audit_rows

        rows = audit_rows(self.request.query_params)
        return scoped(rows, self.request.user, "point__device__site")

    @extend_schema(request=None, responses={202: PointCommandSerializer})
    @action(detail=True, methods=["post"])
    def end(self, request: Request, pk: str | None = None) -> Response:
        _require_permission(request)
        override = self.get_object()
        data = request.data if isinstance(request.data, dict) else {}
        try:
            ended = commanding.end_override(
                override, user=request.user, reason=str(data.get("reason", "ended early"))
            )
        except commanding.CommandRefused as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        if ended is None:
            return Response(
                {"detail": "This is not an active override."}, status=status.HTTP_409_CONFLICT
            )
        return Response(PointCommandSerializer(ended).data, status=status.HTTP_202_ACCEPTED)


class OverrideViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Active timed overrides, soonest to end first."""

    serializer_class = PointCommandSerializer
    pagination_class = CappedLimitOffsetPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return scoped(commanding.active_overrides(), self.request.user, "point__device__site")
