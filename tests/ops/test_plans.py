"""Plan tables, schedules and the unit files generated from them (no S3 needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_my_bucket.cli import main as cli_main
from backup_my_bucket.errors import ExitCode, UsageError
from backup_my_bucket.ops.generate import kubernetes_cronjob, on_calendar, systemd_units
from backup_my_bucket.ops.plans import parse_plan, parse_plans
from backup_my_bucket.ops.schedule import Cron, Every, first_due, parse_schedule

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASE = {"source": "s3://src", "backup": "s3://bak"}


def plan(**table: object):  # type: ignore[no-untyped-def]
    return parse_plan("p", {**BASE, **table})


def test_a_full_plan() -> None:
    p = parse_plan(
        "assets",
        {
            **BASE,
            "schedule": "@daily",
            "timezone": "Europe/Paris",
            "include": "img/*",
            "workers": 8,
            "endpoint_url": "http://127.0.0.1:9000",
            "gc": {"keep_daily": 7, "pit_window": "2d"},
            "verify": {"read_data": 5},
            "hooks": {"pre": "true", "on_failure": "echo x", "timeout": "30s"},
            "notify": {"apprise": "json://h/", "healthchecks": "https://hc/x/"},
        },
    )
    assert p.steps == ("backup", "gc", "verify")
    assert p.schedule == "0 0 * * *" and p.timezone == "Europe/Paris"
    assert p.include == ("img/*",)
    assert p.policy is not None and p.policy.keep_daily == 7 and p.policy.min_keep == 1
    assert p.policy.pit_window == timedelta(days=2)
    assert p.verify_read_share == pytest.approx(0.05)
    assert p.hooks.timeout == timedelta(seconds=30)
    assert p.notify.apprise == ("json://h/",) and p.notify.healthchecks == "https://hc/x"
    assert p.connection == {"endpoint_url": "http://127.0.0.1:9000", "workers": 8}


@pytest.mark.parametrize(
    ("table", "message", "hint"),
    [
        ({"schedul": "@daily"}, "unknown key 'schedul'", "did you mean 'schedule'?"),
        ({"gc": {"keep_daly": 7}}, "[plans.p.gc] has unknown key 'keep-daly'", "'keep-daily'"),
        ({"notify": {"on_sucess": True}}, "unknown key 'on-sucess'", "'on-success'"),
        ({"hooks": {"pre_hook": "x"}}, "unknown key 'pre-hook'", "known keys: pre, post"),
        ({"gc": 7}, "gc must be a table", "[plans.p.gc]"),
        ({"workers": 0}, "workers = 0", None),
        ({"schedule": "every day"}, "not a duration", None),
        ({"schedule": "2 * * *"}, "neither a cron expression", None),
        ({"timezone": "Mars/Olympus"}, "IANA time zone", None),
        ({"steps": ["backup", "prune"]}, "unknown step 'prune'", None),
        ({"steps": ["gc"]}, "runs gc without a retention policy", None),
        (
            {"gc": {"min_keep": 2}},
            "[plans.p.gc]: the retention policy is empty",
            None,
        ),  # min-keep alone is no policy
        ({"notify": {"healthchecks": "ftp://x"}}, "http:// or https://", None),
        ({"verify": {"read_data": 120}}, "percentage", None),
    ],
)
def test_bad_plans_are_refused_with_the_nearest_name(
    table: dict[str, object], message: str, hint: str | None
) -> None:
    with pytest.raises(UsageError) as caught:
        plan(**table)
    assert message in caught.value.message
    if hint is not None:
        assert caught.value.hint is not None and hint in caught.value.hint


def test_plan_needs_a_backup_and_a_source_for_backups() -> None:
    with pytest.raises(UsageError, match="needs backup"):
        parse_plan("p", {"source": "s3://a"})
    with pytest.raises(UsageError, match="backs up nothing without source"):
        parse_plan("p", {"backup": "s3://b"})
    gc_only = parse_plan("p", {"backup": "s3://b", "steps": ["gc"], "gc": {"keep_last": 3}})
    assert gc_only.steps == ("gc",) and gc_only.source is None
    with pytest.raises(UsageError, match="not allowed"):
        parse_plan("../etc", BASE)
    with pytest.raises(UsageError):
        parse_plans(["not", "a", "table"])


def test_config_file_plans_are_checked_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[plans.site-a]\nsource = "s3://a"\nbackup = "s3://b"\nkeep-dayly = 3\n')
    code = cli_main.run(["--config", str(config), "snapshots"])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert "[plans.site-a] has unknown key 'keep-dayly'" in err  # the plan's name as written
    config.write_text('[plan]\nstate-dri = "/x"\n')
    code = cli_main.run(["--config", str(config), "snapshots"])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE and "did you mean 'state-dir'?" in err
    config.write_text('[plan.run]\ntextfile = "/x/bmb.prom"\n[plnas.x]\nsource = "s3://a"\n')
    code = cli_main.run(["--config", str(config), "snapshots"])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE and "[plnas]" in err and "did you mean 'plans'?" in err


def test_cron_schedule_in_a_time_zone() -> None:
    schedule = parse_schedule(plan(schedule="30 2 * * *", timezone="Europe/Paris"))
    assert isinstance(schedule, Cron)
    # 02:30 Paris is 00:30 UTC in winter; on 29 March 2026 02:30 does not exist (DST): 03:00
    assert schedule.next_after(datetime(2026, 3, 27, 12, tzinfo=UTC)) == datetime(
        2026, 3, 28, 1, 30, tzinfo=UTC
    )
    assert schedule.next_after(datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )
    with pytest.raises(UsageError, match="not a valid cron expression"):
        parse_schedule(plan(schedule="61 2 * * *"))
    with pytest.raises(UsageError, match="no schedule"):
        parse_schedule(plan())


def test_first_due_catches_up_once() -> None:
    hourly = Every(timedelta(hours=1), "every 1h")
    nightly = parse_schedule(plan(schedule="0 2 * * *"))
    assert isinstance(nightly, Cron)
    # never ran: an interval plan runs at once, a cron plan waits for its moment
    assert first_due(hourly, None, T, catch_up=True) == (T, "first")
    assert first_due(nightly, None, T, catch_up=True) == (T.replace(day=2, hour=2), "schedule")
    # ran recently: the next moment
    recent = T - timedelta(minutes=20)
    assert first_due(hourly, recent, T, catch_up=True) == (recent + timedelta(hours=1), "schedule")
    # three days down: once, now — or, without catch-up, the next moment
    old = T - timedelta(days=3)
    assert first_due(hourly, old, T, catch_up=True) == (T, "catch-up")
    assert first_due(nightly, old, T, catch_up=True) == (T, "catch-up")
    assert first_due(nightly, old, T, catch_up=False) == (T.replace(day=2, hour=2), "schedule")
    assert first_due(hourly, old, T, catch_up=False)[0] == T + timedelta(hours=1)


def test_next_due_skips_missed_moments() -> None:
    hourly = Every(timedelta(hours=1), "every 1h")
    assert hourly.next_due(T, T + timedelta(minutes=5)) == T + timedelta(hours=1)
    assert hourly.next_due(T, T + timedelta(hours=5, minutes=1)) == T + timedelta(hours=6)
    nightly = parse_schedule(plan(schedule="0 2 * * *"))
    assert nightly.next_due(T, T + timedelta(days=3)) == datetime(2026, 3, 5, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "zone", "expected"),
    [
        ("15 2 * * *", "UTC", ["*-*-* 02:15:00 UTC"]),
        ("*/15 * * * *", "UTC", ["*-*-* *:00,15,30,45:00 UTC"]),
        ("0 3 * * 1-5", "Europe/Paris", ["Mon,Tue,Wed,Thu,Fri *-*-* 03:00:00 Europe/Paris"]),
        ("0 0 1 */3 *", "UTC", ["*-01,04,07,10-01 00:00:00 UTC"]),
        ("0 4 1,15 * 0", "UTC", ["*-*-01,15 04:00:00 UTC", "Sun *-*-* 04:00:00 UTC"]),  # OR
        ("@weekly", "UTC", ["Sun *-*-* 00:00:00 UTC"]),
    ],
)
def test_systemd_on_calendar(cron: str, zone: str, expected: list[str]) -> None:
    schedule = parse_schedule(plan(schedule=cron, timezone=zone))
    assert isinstance(schedule, Cron)
    assert on_calendar(schedule) == expected


def test_systemd_refuses_what_it_cannot_express() -> None:
    schedule = parse_schedule(plan(schedule="0 2 L * *"))
    assert isinstance(schedule, Cron)
    with pytest.raises(UsageError, match="systemd timers cannot express"):
        on_calendar(schedule)


def test_units_and_cronjob() -> None:
    p = plan(schedule="15 2 * * *", catch_up=False)
    units = systemd_units(p, parse_schedule(p), "/opt/bmb/bin/bmb", "/etc/bmb.toml", [])
    service, timer = units["bmb-plan-p.service"], units["bmb-plan-p.timer"]
    assert "ExecStart=/opt/bmb/bin/bmb --config /etc/bmb.toml plan run p\n" in service
    assert "Type=oneshot" in service and "KillSignal=SIGTERM" in service
    assert "OnCalendar=*-*-* 02:15:00 UTC\nPersistent=false" in timer
    every = plan(schedule="every 6h")
    timer = systemd_units(every, parse_schedule(every), "bmb", "/c d.toml", [])["bmb-plan-p.timer"]
    assert "OnUnitActiveSec=21600s" in timer
    job = kubernetes_cronjob(
        every, parse_schedule(every), "cm", "sec", ["--pushgateway", "http://g"]
    )
    assert 'schedule: "0 */6 * * *"' in job and "concurrencyPolicy: Forbid" in job
    assert '"plan", "run", "p", "--pushgateway", "http://g"' in job
    odd = plan(schedule="every 7h")
    with pytest.raises(UsageError, match="CronJob cannot run"):
        kubernetes_cronjob(odd, parse_schedule(odd), "cm", "sec", [])
