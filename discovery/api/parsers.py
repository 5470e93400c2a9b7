"""A JSON parser that refuses deep nesting before Python's parser sees it.

The standard parser recurses once per nesting level: a body nested ~950 deep raised
``RecursionError``, a 500, even on the unauthenticated token endpoint. No request of
this API nests more than a few levels, so anything deeper than ``MAX_DEPTH`` is a 400.
"""

from __future__ import annotations

import codecs
import re
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

MAX_DEPTH = 32

# Strings are skipped whole, so brackets inside them do not count.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (0 for a scalar)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        found = match.group()
        if found in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif found in "]}":
            depth -= 1
    return deepest


class DepthLimitedJSONParser(JSONParser):
    """``JSONParser`` with a nesting limit: too deep is a 400 with the reason."""

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except ValueError as exc:  # undecodable bytes
            raise ParseError(f"JSON parse error - {exc}") from None
        if json_depth(text) > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.")
        try:
            parse_constant = json.strict_constant if self.strict else None
            return json.loads(text, parse_constant=parse_constant)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
