"""Duration strings such as ``90s``, ``5m``, ``1h30m``, ``250ms``, parsed to float seconds."""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import BeforeValidator

__all__ = ["Duration", "format_duration", "parse_duration"]

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Seconds in a duration string; raises ValueError with the accepted forms otherwise."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f'a duration is a string such as "90s", "5m" or "1h", not {value!r}')
    text = value.strip()
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f'"{value}" is not a duration; write a number and a unit (ms, s, m, h, d), e.g. "90s"'
        )
    return total


def format_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{int(seconds * 1000)}ms"


Duration = Annotated[float, BeforeValidator(parse_duration)]
