"""Pagination with hard caps: a huge ``limit`` or ``page_size`` is cut down, never a 500."""

from __future__ import annotations

from rest_framework import pagination
from rest_framework.request import Request

# OFFSET beyond this is nonsense here and would overflow a 64-bit integer further on.
MAX_OFFSET = 10**12


class CappedLimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)


class ReadingCursorPagination(pagination.CursorPagination):
    """Keyset pagination for the readings table: a page costs the same on row 10 and on
    row 10 million, and rows inserted meanwhile do not shift the pages (unlike OFFSET)."""

    ordering = "timestamp"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
