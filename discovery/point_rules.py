"""Which objects discovery stores at a site: the site's include/exclude rules.

A large site (40,000 objects) is read as its engineer wants: by object type, by name
pattern (shell-style, case-insensitive: ``*Setpoint*``) and by object-instance range.
The rules are a site's ``point_rules``::

    {"include_types": ["analog-input"], "exclude_types": ["file"],
     "include_names": ["Zone*"], "exclude_names": ["*Config*"],
     "include_instances": [[0, 999]], "exclude_instances": [[500, 599]]}

Every key is optional; an empty ``include_*`` includes everything. An object is stored
when it passes every include and no exclude. Objects already stored that the rules now
leave out are kept (their history matters) and marked missing, so they are not polled.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError

from discovery.bacnet_types import PointInfo

RULE_KEYS = frozenset(
    {
        "include_types",
        "exclude_types",
        "include_names",
        "exclude_names",
        "include_instances",
        "exclude_instances",
    }
)


def validate_rules(rules: Any) -> None:
    """Raise ``ValidationError`` saying what is wrong with ``rules``."""
    if not isinstance(rules, dict):
        raise ValidationError("Point rules must be an object.")
    unknown = set(rules) - RULE_KEYS
    if unknown:
        raise ValidationError(
            f"Unknown point rule(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(RULE_KEYS))}."
        )
    for key in ("include_types", "exclude_types", "include_names", "exclude_names"):
        value = rules.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError(f"{key} must be a list of strings.")
    for key in ("include_instances", "exclude_instances"):
        for pair in rules.get(key, []):
            if (
                not isinstance(pair, list | tuple)
                or len(pair) != 2
                or not all(isinstance(v, int) for v in pair)
                or pair[0] > pair[1]
            ):
                raise ValidationError(f"{key} must be a list of [low, high] instance ranges.")


def _name_matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)


def _in_ranges(instance: int, ranges: Sequence[Sequence[int]]) -> bool:
    return any(low <= instance <= high for low, high in ranges)


def wanted(point: PointInfo, rules: dict[str, Any]) -> bool:
    """True if the site's rules keep ``point``."""
    if not rules:
        return True
    if rules.get("include_types") and point.object_type not in rules["include_types"]:
        return False
    if point.object_type in rules.get("exclude_types", ()):
        return False
    if rules.get("include_names") and not _name_matches(point.name, rules["include_names"]):
        return False
    if _name_matches(point.name, rules.get("exclude_names", ())):
        return False
    if rules.get("include_instances") and not _in_ranges(
        point.instance, rules["include_instances"]
    ):
        return False
    return not _in_ranges(point.instance, rules.get("exclude_instances", ()))


def apply_rules(points: Sequence[PointInfo], rules: dict[str, Any]) -> list[PointInfo]:
    """The points the rules keep."""
    return [p for p in points if wanted(p, rules)]
