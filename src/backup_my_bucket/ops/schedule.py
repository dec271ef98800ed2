"""When a plan runs: a cron expression (cronsim) or a fixed interval, and the catch-up rule.

cronsim was chosen over croniter: it has no dependencies, it is written for (and used by) the
Healthchecks cron monitor and matches Debian's cron, DST changes included, and it is released
regularly; croniter was declared abandoned in 2025 before a new home took it over, and it
pulls in python-dateutil. Cron expressions are evaluated in the plan's time zone (UTC unless
``timezone`` says otherwise); every moment this module returns is UTC.

The rules (docs/operations.md, "The daemon"):
- a cron plan that never ran waits for its first moment; an interval plan that never ran is
  due at once ("every 6h" promises at most 6 h without a backup);
- after downtime (the daemon stopped, the machine asleep), a plan whose moment passed runs
  once, at once — never once per missed moment — unless ``catch-up = false``; an interrupted
  run's moment counts as missed (:meth:`.history.History.last_slot`);
- a plan is never run twice at once: a moment that comes while it runs is skipped.
"""

from __future__ import annotations

import math
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from cronsim import CronSim, CronSimError

from ..errors import UsageError
from ..units import parse_duration
from .plans import Plan

Trigger = Literal["schedule", "catch-up", "first", "manual"]


class Schedule(Protocol):
    text: str

    def next_after(self, moment: datetime) -> datetime:
        """The first moment of the schedule strictly after ``moment``."""
        ...

    def next_due(self, slot: datetime, now: datetime) -> datetime:
        """The next moment after ``slot`` that is still to come at ``now`` (missed ones
        are skipped: catching up is once, not once per missed moment)."""
        ...


@dataclass(frozen=True, slots=True)
class Every:
    interval: timedelta
    text: str

    def next_after(self, moment: datetime) -> datetime:
        return moment + self.interval

    def next_due(self, slot: datetime, now: datetime) -> datetime:
        periods = max(1, math.floor((now - slot) / self.interval) + 1)
        return slot + periods * self.interval


@dataclass(frozen=True, slots=True)
class Cron:
    expression: str
    zone: zoneinfo.ZoneInfo
    text: str

    def next_after(self, moment: datetime) -> datetime:
        return next(CronSim(self.expression, moment.astimezone(self.zone))).astimezone(UTC)

    def next_due(self, slot: datetime, now: datetime) -> datetime:
        following = self.next_after(slot)
        return following if following > now else self.next_after(now)

    def explain(self) -> str:
        return str(CronSim(self.expression, datetime(2000, 1, 1, tzinfo=self.zone)).explain())

    @property
    def parsed(self) -> CronSim:
        """cronsim's parsed fields (minutes, hours, days, months, weekdays, day_and)."""
        return CronSim(self.expression, datetime(2000, 1, 1, tzinfo=self.zone))


def parse_schedule(plan: Plan) -> Every | Cron:
    """The plan's schedule; a cron expression cronsim refuses is a usage error (exit 2)."""
    text = plan.schedule
    if text is None:
        raise UsageError(
            f"plan {plan.name!r} has no schedule",
            hint=f'add schedule = "15 2 * * *" (or "every 6h") to [plans.{plan.name}]',
        )
    if text.startswith("every "):
        return Every(parse_duration(text[6:]), text)
    zone = zoneinfo.ZoneInfo(plan.timezone)
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=zone))
    except (CronSimError, ValueError) as exc:
        raise UsageError(
            f"[plans.{plan.name}] schedule {text!r} is not a valid cron expression: {exc}",
            hint="five fields: minute hour day-of-month month day-of-week, e.g. 15 2 * * *",
        ) from None
    return Cron(text, zone, text if plan.timezone == "UTC" else f"{text} ({plan.timezone})")


def first_due(
    schedule: Every | Cron, last: datetime | None, now: datetime, *, catch_up: bool
) -> tuple[datetime, Trigger]:
    """When a plan is first due after the daemon starts, given its last run (or slot)."""
    if last is None:
        if isinstance(schedule, Every):
            return now, "first"
        return schedule.next_after(now), "schedule"
    missed = schedule.next_after(last)
    if missed > now:
        return missed, "schedule"
    if catch_up:
        return now, "catch-up"
    return schedule.next_due(missed, now), "schedule"
