"""Backup plans: the ``[plans.NAME]`` tables of the config file, checked and typed.

    [plans.assets]
    source = "s3://app-assets"
    backup = "s3://app-assets-backup"
    schedule = "15 2 * * *"          # cron (UTC unless timezone = "Europe/Paris"), or "every 6h"
    [plans.assets.gc]
    keep-daily = 7
    [plans.assets.verify]
    read-data = 1
    [plans.assets.notify]
    apprise = ["ntfy://ntfy.sh/my-backups"]
    healthchecks = "https://hc-ping.com/<uuid>"

Every key is checked: an unknown one is refused (exit 2) with the nearest known name, as a
misspelt retention key must never be ignored. Keys take dashes or underscores (the config
loader turns them into underscores); plan names are kept as written. Nothing here imports an
optional library: the cron expression itself is checked by :mod:`.schedule` (cronsim).
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..engine.retention import RetentionPolicy, policy_from_options
from ..engine.transfer import DEFAULT_MULTIPART_THRESHOLD
from ..errors import UsageError
from ..model import S3Url
from ..units import parse_duration, parse_size

STEPS = ("backup", "gc", "verify")
CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Global options a plan may set for itself (else the file's top level, flags, environment).
CONNECTION_KEYS = (
    "endpoint_url",
    "source_endpoint_url",
    "backup_endpoint_url",
    "profile",
    "region",
    "catalog",
    "workers",
)
PLAN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_LOCK_TIMEOUT = timedelta(minutes=15)
DEFAULT_HOOK_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Hooks:
    """Shell commands around a run (``sh -c``); the summary is in BMB_* and on stdin."""

    pre: str | None = None
    post: str | None = None
    on_failure: str | None = None
    timeout: timedelta = DEFAULT_HOOK_TIMEOUT


@dataclass(frozen=True, slots=True)
class Notify:
    """Where a run reports: apprise URLs (on failure, and on success if asked) and a
    healthchecks-style ping URL (``/start``, success, ``/fail``)."""

    apprise: tuple[str, ...] = ()
    on_success: bool = False
    healthchecks: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    backup: S3Url
    source: S3Url | None = None
    steps: tuple[str, ...] = ("backup",)
    schedule: str | None = None  # a cron expression (aliases expanded) or "every DURATION"
    timezone: str = "UTC"
    catch_up: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    tags: tuple[str, ...] = ()
    policy: RetentionPolicy | None = None
    verify_read_share: float = 0.0  # 0..1
    lock_timeout: timedelta = DEFAULT_LOCK_TIMEOUT
    hooks: Hooks = field(default_factory=Hooks)
    notify: Notify = field(default_factory=Notify)
    connection: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        what = f"{self.source} → {self.backup}" if self.source else str(self.backup)
        return f"{what} ({' → '.join(self.steps)})"


# --- the schema: one converter per key --------------------------------------------------------

Convert = Callable[[str, Any], Any]


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(key, value, "a non-empty string")
    return value


def _strings(key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise _bad(key, value, "a string or a list of strings")
    return tuple(items)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(key, value, "true or false")
    return value


def _count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(key, value, "a whole number, 0 or more")
    return value


def _duration(key: str, value: Any) -> timedelta:
    if not isinstance(value, str):
        raise _bad(key, value, "a duration such as 90m, 36h, 7d")
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise _bad(key, value, "a positive duration")
    return duration


def _url(key: str, value: Any) -> S3Url:
    return S3Url.parse(_str(key, value))


def _workers(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
        raise _bad(key, value, "a whole number from 1 to 1024")
    return value


def _size(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(key, value, "a size such as 64MiB")
    return parse_size(value)


def _http_url(key: str, value: Any) -> str:
    text = _str(key, value)
    if not text.startswith(("http://", "https://")):
        raise _bad(key, "…", "an http:// or https:// URL")
    return text.rstrip("/")


def _percent(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise _bad(key, value, "a percentage from 0 to 100")
    return float(value)


def _timezone(key: str, value: Any) -> str:
    name = _str(key, value)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _bad(key, value, "an IANA time zone such as UTC or Europe/Paris") from None
    return name


def _steps(key: str, value: Any) -> tuple[str, ...]:
    names = _strings(key, value)
    for name in names:
        if name not in STEPS:
            raise UsageError(
                f"unknown step {name!r} in {key}", hint=f"steps are {', '.join(STEPS)}"
            )
    return tuple(step for step in STEPS if step in names)  # always in this order


def _schedule(key: str, value: Any) -> str:
    text = " ".join(_str(key, value).split())
    if text.lower().startswith("every "):
        _duration(key, text[6:])
        return text.lower()
    text = CRON_ALIASES.get(text.lower(), text)
    if len(text.split()) != 5:
        raise UsageError(
            f"schedule {value!r} is neither a cron expression (5 fields) nor 'every DURATION'",
            hint='e.g. schedule = "15 2 * * *", "@daily" or "every 6h"',
        )
    return text


PLAN_KEYS: dict[str, Convert] = {
    "source": _url,
    "backup": _url,
    "steps": _steps,
    "schedule": _schedule,
    "timezone": _timezone,
    "catch_up": _bool,
    "include": _strings,
    "exclude": _strings,
    "multipart_threshold": _size,
    "tags": _strings,
    "lock_timeout": _duration,
    "endpoint_url": _str,
    "source_endpoint_url": _str,
    "backup_endpoint_url": _str,
    "profile": _str,
    "region": _str,
    "catalog": _str,
    "workers": _workers,
}
GC_KEYS: dict[str, Convert] = {
    "keep_last": _count,
    "keep_within": _duration,
    "keep_hourly": _count,
    "keep_daily": _count,
    "keep_weekly": _count,
    "keep_monthly": _count,
    "keep_yearly": _count,
    "min_keep": _count,
    "pit_window": _duration,
}
VERIFY_KEYS: dict[str, Convert] = {"read_data": _percent}
HOOK_KEYS: dict[str, Convert] = {
    "pre": _str,
    "post": _str,
    "on_failure": _str,
    "timeout": _duration,
}
NOTIFY_KEYS: dict[str, Convert] = {
    "apprise": _strings,
    "on_success": _bool,
    "healthchecks": _http_url,
}
TABLES: dict[str, dict[str, Convert]] = {
    "gc": GC_KEYS,
    "verify": VERIFY_KEYS,
    "hooks": HOOK_KEYS,
    "notify": NOTIFY_KEYS,
}


def _bad(key: str, value: Any, expected: str) -> UsageError:
    return UsageError(f"{key.replace('_', '-')} = {value!r}: expected {expected}")


def _dashed(key: str) -> str:
    return key.replace("_", "-")


def _unknown(where: str, key: str, known: Sequence[str]) -> UsageError:
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = (
        f"did you mean {_dashed(near[0])!r}?"
        if near
        else "known keys: " + ", ".join(_dashed(k) for k in known)
    )
    return UsageError(f"{where} has unknown key {_dashed(key)!r}", hint=hint)


def _check_table(where: str, table: Any, schema: Mapping[str, Convert]) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise UsageError(f"{where} must be a table", hint=f"write [{where.strip('[]')}]")
    out: dict[str, Any] = {}
    for key, value in table.items():
        convert = schema.get(key)
        if convert is None:
            raise _unknown(where, key, list(schema))
        try:
            out[key] = convert(key, value)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc.message}", hint=exc.hint) from None
    return out


def parse_plan(name: str, table: Any) -> Plan:
    """One ``[plans.NAME]`` table (keys already with underscores) as a :class:`Plan`."""
    where = f"[plans.{name}]"
    if not PLAN_NAME.match(name):
        raise UsageError(
            f"plan name {name!r} is not allowed",
            hint="use letters, digits, '.', '_' and '-' (it names files and systemd units)",
        )
    if not isinstance(table, Mapping):
        raise UsageError(f"{where} must be a table", hint=f"write {where} and its keys below")
    for key, value in table.items():
        if key not in PLAN_KEYS and key not in TABLES:
            raise _unknown(where, key, [*PLAN_KEYS, *TABLES])
        table_types = (Mapping, bool) if key == "verify" else (Mapping,)  # verify = true
        if key in TABLES and not isinstance(value, table_types):
            raise UsageError(
                f"{where}: {_dashed(key)} must be a table", hint=f"write [plans.{name}.{key}]"
            )
    values = _check_table(where, {k: v for k, v in table.items() if k in PLAN_KEYS}, PLAN_KEYS)
    tables = {
        key: _check_table(f"[plans.{name}.{key}]", table[key], schema)
        for key, schema in TABLES.items()
        if isinstance(table.get(key), Mapping)
    }
    if "backup" not in values:
        raise UsageError(f'{where} needs backup = "s3://bucket[/prefix]"')
    verify = "verify" in tables or table.get("verify") is True
    steps = values.get("steps") or tuple(
        step
        for step, wanted in (("backup", True), ("gc", "gc" in tables), ("verify", verify))
        if wanted
    )
    if "backup" in steps and "source" not in values:
        raise UsageError(
            f'{where} backs up nothing without source = "s3://bucket[/prefix]"',
            hint='give the source, or steps = ["gc", "verify"] for a plan without backups',
        )
    if "gc" in steps and "gc" not in tables:
        raise UsageError(
            f"{where} runs gc without a retention policy",
            hint=f"add [plans.{name}.gc] with keep-daily = 7 (or another keep rule)",
        )
    policy = None
    if "gc" in tables:
        try:
            policy = policy_from_options(**{"min_keep": 1, **tables["gc"]})
            policy.check()
        except UsageError as exc:
            raise UsageError(f"[plans.{name}.gc]: {exc.message}", hint=exc.hint) from None
    hooks, notify = tables.get("hooks", {}), tables.get("notify", {})
    return Plan(
        name=name,
        backup=values["backup"],
        source=values.get("source"),
        steps=steps,
        schedule=values.get("schedule"),
        timezone=values.get("timezone", "UTC"),
        catch_up=values.get("catch_up", True),
        include=values.get("include", ()),
        exclude=values.get("exclude", ()),
        multipart_threshold=values.get("multipart_threshold", DEFAULT_MULTIPART_THRESHOLD),
        tags=values.get("tags", ()),
        policy=policy,
        verify_read_share=tables.get("verify", {}).get("read_data", 0.0) / 100,
        lock_timeout=values.get("lock_timeout", DEFAULT_LOCK_TIMEOUT),
        hooks=Hooks(
            pre=hooks.get("pre"),
            post=hooks.get("post"),
            on_failure=hooks.get("on_failure"),
            timeout=hooks.get("timeout", DEFAULT_HOOK_TIMEOUT),
        ),
        notify=Notify(
            apprise=notify.get("apprise", ()),
            on_success=notify.get("on_success", False),
            healthchecks=notify.get("healthchecks"),
        ),
        connection={k: values[k] for k in CONNECTION_KEYS if k in values},
    )


def parse_plans(tables: Any) -> dict[str, Plan]:
    """The ``plans`` table of the config file: name → :class:`Plan`, in file order."""
    if not isinstance(tables, Mapping):
        raise UsageError("plans must be a table of plans", hint="write [plans.NAME] tables")
    plans: dict[str, Plan] = {}
    for name, table in tables.items():
        plans[name] = parse_plan(name, table)
    return plans


def select(plans: Mapping[str, Plan], names: Sequence[str]) -> list[Plan]:
    """The named plans (all of them when ``names`` is empty); an unknown name is refused."""
    if not plans:
        raise UsageError(
            "the config file has no plans",
            hint="add a [plans.NAME] table (docs/operations.md shows one)",
        )
    for name in names:
        if name not in plans:
            near = difflib.get_close_matches(name, list(plans), n=1)
            raise UsageError(
                f"no plan named {name!r}",
                hint=f"did you mean {near[0]!r}?" if near else "plans: " + ", ".join(plans),
            )
    return [plans[name] for name in names] if names else list(plans.values())
