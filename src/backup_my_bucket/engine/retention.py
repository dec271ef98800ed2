"""The retention policy: which snapshots to keep. A pure function, tested with golden files.

Semantics follow restic's ``ApplyPolicy``:

- snapshots are ranked newest first (ties on the instant broken by id, descending), so the
  outcome never depends on the order the catalog listed them in;
- ``keep_last`` keeps the N newest;
- ``keep_hourly/daily/weekly/monthly/yearly`` bucket the snapshots by UTC hour, day, ISO week,
  month and year; walking newest first, the first snapshot seen in a bucket (the newest in it)
  is kept, until N distinct buckets have been counted;
- ``keep_within`` keeps every snapshot taken at or after ``now - keep_within``;
- ``pit_window`` (the point-in-time window) keeps every snapshot at or after ``now - window``:
  the versions it needs are kept by the window anyway;
- ``min_keep`` is a floor applied last: if fewer would be kept, the newest of the removed ones
  are kept too (reason ``min-keep``). All snapshots older than ``keep_within`` therefore never
  means "delete them all" — the original tool's bug.

A policy with no keep rule (``min_keep`` alone is only a floor) is refused: nothing is ever
deleted because an option was forgotten.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import UsageError
from ..units import parse_duration

REASON_REMOVE = "no keep rule matched"
REASON_MIN_KEEP = "min-keep"


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """What retention needs to know of a snapshot: its id and its instant T (aware UTC), and
    the versions gc keeps for it beyond what T explains (absolute keys: engine/cut.Holds)."""

    id: str
    at: datetime
    held: frozenset[tuple[str, str]] = frozenset()  # (key, version id)
    holds_index: bool = False  # and every row of its index (its open uploads were not listed)


@dataclass(frozen=True, slots=True)
class Decision:
    """Keep or remove one snapshot, with the rules that decided it."""

    snapshot: SnapshotRef
    keep: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Which snapshots (and which point-in-time window) gc keeps. Counts of 0 mean unset."""

    keep_last: int = 0
    keep_within: timedelta | None = None
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    min_keep: int = 0
    pit_window: timedelta | None = None  # keep every version needed for any moment in it

    def __post_init__(self) -> None:
        for name in (*_BUCKETS, "keep_last", "min_keep"):
            if getattr(self, name) < 0:
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} must not be negative", hint=f"use {flag} 0 or more")
        for name in ("keep_within", "pit_window"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} must be a positive duration", hint="e.g. 7d, 36h, 2w")

    @property
    def is_empty(self) -> bool:
        """True when no rule keeps anything (``min_keep`` is a floor, not a rule)."""
        return (
            self.keep_last == 0
            and self.keep_within is None
            and self.pit_window is None
            and all(getattr(self, name) == 0 for name in _BUCKETS)
        )

    def check(self) -> None:
        """Raise UsageError (exit 2) for an empty policy: gc never deletes by omission."""
        if self.is_empty:
            raise UsageError(
                "the retention policy is empty: gc would not know what to keep",
                hint="give at least one of --keep-last, --keep-within, --keep-hourly, "
                "--keep-daily, --keep-weekly, --keep-monthly, --keep-yearly (or set them in "
                "the [gc] section of the config file); --min-keep alone is only a floor",
            )


def _hour(at: datetime) -> Hashable:
    return (at.year, at.month, at.day, at.hour)


def _day(at: datetime) -> Hashable:
    return at.date()


def _week(at: datetime) -> Hashable:
    iso = at.isocalendar()
    return (iso.year, iso.week)


def _month(at: datetime) -> Hashable:
    return (at.year, at.month)


def _year(at: datetime) -> Hashable:
    return at.year


# policy field → (bucket of a UTC instant, reason); evaluated in this order.
_BUCKETS: dict[str, tuple[Callable[[datetime], Hashable], str]] = {
    "keep_hourly": (_hour, "hourly"),
    "keep_daily": (_day, "daily"),
    "keep_weekly": (_week, "weekly"),
    "keep_monthly": (_month, "monthly"),
    "keep_yearly": (_year, "yearly"),
}


def _utc(when: datetime, what: str) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware: {when!r}")
    return when.astimezone(UTC)


def _rule_reasons(
    ranked: Sequence[SnapshotRef], policy: RetentionPolicy, now: datetime
) -> list[list[str]]:
    """For each ranked snapshot (newest first), the keep rules that match it."""
    reasons: list[list[str]] = [[] for _ in ranked]
    for index in range(min(policy.keep_last, len(ranked))):
        reasons[index].append("last")
    for name, (bucket_of, reason) in _BUCKETS.items():
        left: int = getattr(policy, name)
        last_bucket: Hashable = object()  # equal to no bucket
        for index, snap in enumerate(ranked):
            if left == 0:
                break
            bucket = bucket_of(_utc(snap.at, "a snapshot's instant"))
            if bucket != last_bucket:
                reasons[index].append(reason)
                last_bucket, left = bucket, left - 1
    for field, reason in ((policy.keep_within, "within"), (policy.pit_window, "pit-window")):
        if field is not None:
            for index, snap in enumerate(ranked):
                if snap.at >= now - field:
                    reasons[index].append(reason)
    return reasons


def apply_policy(
    snapshots: Sequence[SnapshotRef], policy: RetentionPolicy, now: datetime
) -> list[Decision]:
    """Decide keep/remove for every snapshot; decisions come newest first.

    Pure: the same snapshots, policy and ``now`` always give the same decisions. Raises
    UsageError for an empty policy, even when there are no snapshots.
    """
    policy.check()
    now = _utc(now, "now")
    ranked = sorted(snapshots, key=lambda s: (_utc(s.at, "a snapshot's instant"), s.id))
    ranked.reverse()
    reasons = _rule_reasons(ranked, policy, now)
    missing = policy.min_keep - sum(1 for r in reasons if r)
    for found in reasons:  # newest removed ones first
        if missing <= 0:
            break
        if not found:
            found.append(REASON_MIN_KEEP)
            missing -= 1
    return [
        Decision(snap, bool(found), tuple(found) if found else (REASON_REMOVE,))
        for snap, found in zip(ranked, reasons, strict=True)
    ]


def policy_from_options(
    *,
    keep_last: int | None = None,
    keep_within: str | timedelta | None = None,
    keep_hourly: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    keep_yearly: int | None = None,
    min_keep: int | None = None,
    pit_window: str | timedelta | None = None,
) -> RetentionPolicy:
    """Build a policy from CLI options / config values (None: not given).

    Durations may be text (``7d``, ``36h``; see :func:`units.parse_duration`) or timedeltas.
    Does not refuse an empty policy: :func:`apply_policy` (and ``policy.check()``) do.
    """

    def duration(value: str | timedelta | None) -> timedelta | None:
        return parse_duration(value) if isinstance(value, str) else value

    return RetentionPolicy(
        keep_last=keep_last or 0,
        keep_within=duration(keep_within),
        keep_hourly=keep_hourly or 0,
        keep_daily=keep_daily or 0,
        keep_weekly=keep_weekly or 0,
        keep_monthly=keep_monthly or 0,
        keep_yearly=keep_yearly or 0,
        min_keep=min_keep or 0,
        pit_window=duration(pit_window),
    )
