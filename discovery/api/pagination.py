"""Pagination with hard caps: a huge ``limit`` or ``page_size`` is cut down, never a 500;
a value that is not a number (``page_size=abc``, ``limit=-1``, a garbage cursor) is a 400
that names the parameter, like every other bad filter value (DRF would ignore it)."""

from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request

# OFFSET beyond this is nonsense here and would overflow a 64-bit integer further on.
MAX_OFFSET = 10**12


def count_parameter(request: Request, name: str, *, minimum: int) -> int | None:
    """The integer query parameter ``name`` (None when absent), or a 400 naming it."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValidationError({name: [f"{name} must be a whole number."]}) from None
    if value < minimum:
        raise ValidationError({name: [f"{name} must be at least {minimum}."]})
    return value


class CappedLimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000

    def get_limit(self, request: Request) -> int:
        limit = count_parameter(request, self.limit_query_param, minimum=1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request: Request) -> int:
        offset = count_parameter(request, self.offset_query_param, minimum=0)
        return min(offset or 0, MAX_OFFSET)


class ReadingCursorPagination(pagination.CursorPagination):
    """Keyset pagination for the readings table: a page costs the same on row 10 and on
    row 10 million, and rows inserted meanwhile do not shift the pages (unlike OFFSET)."""

    ordering = "timestamp"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    invalid_cursor_message = "cursor is not one this API gave out: follow next or previous."

    def get_page_size(self, request: Request) -> int:
        size = count_parameter(request, self.page_size_query_param, minimum=1)
        return self.page_size if size is None else min(size, self.max_page_size)

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {self.cursor_query_param: [self.invalid_cursor_message]}
            ) from None
