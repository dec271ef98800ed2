"""Parsing and formatting of the times, durations and sizes users type, and the one place
that formats what people read: sizes, counts with their noun, times (UTC, zone shown),
durations and rates. JSON output keeps raw numbers and ISO times (:func:`format_time`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import UsageError

_DURATION_UNITS = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_DURATION = re.compile(r"(\d+)\s*([smhdwy])")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``3d``, ``1w``, ``1y`` or a sum like ``1d12h``."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _DURATION.sub("", compact):
        raise UsageError(
            f"not a duration: {text!r}", hint="use a number and a unit, e.g. 90m, 36h, 7d, 2w, 1y"
        )
    seconds = sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION.findall(compact))
    return timedelta(seconds=seconds)


def parse_time(text: str, now: datetime) -> datetime:
    """An ISO 8601 time with a zone, or a relative one (``2h``, ``3d ago``) before ``now``.

    A time without a zone is refused: a restore to the wrong hour is a silent disaster.
    """
    stripped = text.strip()
    if stripped.upper().endswith(" UTC"):  # as human_time prints it: copy, paste, restore
        stripped = stripped[:-4].strip() + "+00:00"
    relative = stripped.removesuffix("ago").strip()
    if relative and _DURATION.sub("", relative.lower().replace(" ", "")) == "":
        return now - parse_duration(relative)
    try:
        parsed = datetime.fromisoformat(stripped)
    except ValueError:
        raise UsageError(
            f"not a time: {text!r}",
            hint="use ISO 8601 with a zone (2026-11-26T10:00:00Z) or a relative time (2h, 3d)",
        ) from None
    if parsed.tzinfo is None:
        raise UsageError(
            f"time {text!r} has no zone",
            hint="add Z for UTC or an offset such as +01:00: 2026-11-26T10:00:00Z",
        )
    return parsed.astimezone(UTC)


def format_time(when: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``; sub-second digits only when there are any."""
    utc = when.astimezone(UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_size(text: str | int) -> int:
    """``8MiB``, ``5GB``, ``1.5GiB`` or plain bytes."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise UsageError(f"not a size: {text!r}", hint="use bytes or a unit: 8MiB, 5GB, 1GiB")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """A count and its noun in agreement: ``1 object``, ``0 objects``, ``1,234 keys``
    (``nouns``: an irregular plural)."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"


def human_time(when: datetime) -> str:
    """A time for people: UTC, to the second, the zone shown (``2026-11-26 10:00:00 UTC``).
    :func:`parse_time` reads it back."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h03m``, ``4d02h``: two units at most."""
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_bytes(size: int) -> str:
    """A size with the exact byte count when it is rounded: ``1.2 MiB (1,234,567 bytes)``."""
    short = format_size(size)
    return short if size < 1024 else f"{short} ({size:,} bytes)"
