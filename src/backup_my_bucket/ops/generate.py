"""For those who prefer their own scheduler: systemd units and a Kubernetes CronJob of a plan.

The generated units run `bmb plan run NAME`, so hooks, notifications, metrics (a textfile or a
Pushgateway) and the history work the same as under `bmb daemon`. The schedule is translated:
cron fields become a systemd ``OnCalendar=`` in the plan's time zone (two lines when both the
day of month and the day of week are restricted, since cron then means either); an interval
becomes ``OnUnitActiveSec=``. ``Persistent=true`` and ``startingDeadlineSeconds`` give the
daemon's catch-up-once rule; ``concurrencyPolicy: Forbid`` its no-overlap rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from cronsim import CronSim

from ..errors import UsageError
from .plans import Plan
from .schedule import Cron, Every

_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def _values(values: Iterable[int], full: range) -> str:
    chosen = sorted(set(values))
    return "*" if chosen == list(full) else ",".join(f"{v:02d}" for v in chosen)


def on_calendar(cron: Cron) -> list[str]:
    """The ``OnCalendar=`` values equal to a cron expression (cronsim's parse of it)."""
    p = cron.parsed
    special = (CronSim.LAST, CronSim.LAST_WEEKDAY)
    if any(isinstance(w, tuple) for w in p.weekdays) or any(d in special for d in p.days):
        raise UsageError(
            f"systemd timers cannot express {cron.expression!r} (L, LW or # fields)",
            hint="run the plan under `bmb daemon`, or write the OnCalendar= line yourself",
        )
    weekdays = sorted({int(w) % 7 for w in p.weekdays if isinstance(w, int)})
    dow = "" if len(weekdays) == 7 else ",".join(_DAYS[w] for w in weekdays) + " "
    months = _values(p.months, range(1, 13))
    days = _values(p.days, range(1, 32))
    clock = f"{_values(p.hours, range(24))}:{_values(p.minutes, range(60))}:00 {cron.zone.key}"
    if p.day_and:
        return [f"{dow}*-{months}-{days} {clock}"]
    return [f"*-{months}-{days} {clock}", f"{dow}*-{months}-* {clock}"]


def _arg(value: str) -> str:
    return f'"{value}"' if any(c.isspace() for c in value) else value


def _command(bmb: str, config: str, args: Sequence[str]) -> str:
    return " ".join(_arg(a) for a in (bmb, "--config", config, *args))


def systemd_units(
    plan: Plan, schedule: Every | Cron, bmb: str, config: str, args: Sequence[str]
) -> dict[str, str]:
    """``bmb-plan-NAME.service`` (oneshot) and ``bmb-plan-NAME.timer``."""
    unit = f"bmb-plan-{plan.name}"
    service = f"""\
[Unit]
Description=backup-my-bucket plan {plan.name}: {plan.describe()}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={_command(bmb, config, ["plan", "run", plan.name, *args])}
# Credentials: the usual AWS chain, e.g. from a file readable by this service only:
#EnvironmentFile=/etc/backup-my-bucket/credentials.env
#User=backup
# SIGTERM interrupts the run cleanly (recorded as interrupted; the next run continues).
KillSignal=SIGTERM
TimeoutStopSec=120
Nice=10
NoNewPrivileges=yes
PrivateTmp=yes
"""
    if isinstance(schedule, Cron):
        when = "\n".join(f"OnCalendar={line}" for line in on_calendar(schedule))
        catch_up = f"Persistent={'true' if plan.catch_up else 'false'}"
        timer_lines = f"{when}\n{catch_up}"
    else:
        seconds = int(schedule.interval.total_seconds())
        timer_lines = f"OnActiveSec=1min\nOnUnitActiveSec={seconds}s"
    timer = f"""\
[Unit]
Description=Run backup-my-bucket plan {plan.name} ({schedule.text})

[Timer]
{timer_lines}
Unit={unit}.service

[Install]
WantedBy=timers.target
"""
    return {f"{unit}.service": service, f"{unit}.timer": timer}


def daemon_unit(bmb: str, config: str, args: Sequence[str]) -> dict[str, str]:
    """``bmb-daemon.service``: the daemon itself as a service (its plans' schedules inside)."""
    service = f"""\
[Unit]
Description=backup-my-bucket daemon: backup plans on their schedules
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
ExecStart={_command(bmb, config, ["daemon", *args])}
#EnvironmentFile=/etc/backup-my-bucket/credentials.env
#User=backup
Restart=on-failure
RestartSec=30
# SIGTERM: no new run starts, a running one stops at a safe point and is recorded.
KillSignal=SIGTERM
TimeoutStopSec=120
NoNewPrivileges=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""
    return {"bmb-daemon.service": service}


def _cron_of(plan: Plan, schedule: Every | Cron) -> str:
    if isinstance(schedule, Cron):
        return schedule.expression
    seconds = int(schedule.interval.total_seconds())
    if schedule.interval < timedelta(minutes=1) or seconds % 60:
        raise UsageError(f"a CronJob cannot run every {schedule.text[6:]}", hint="use minutes")
    minutes = seconds // 60
    if minutes < 60 and 60 % minutes == 0:
        return f"*/{minutes} * * * *"
    if minutes % 60 == 0 and 24 % (minutes // 60) == 0:
        return f"0 */{minutes // 60} * * *" if minutes < 1440 else "0 0 * * *"
    raise UsageError(
        f"plan {plan.name}: a CronJob cannot run {schedule.text}",
        hint="use a cron expression for the plan, or an interval that divides an hour or a day",
    )


def kubernetes_cronjob(
    plan: Plan, schedule: Every | Cron, config_map: str, secret: str, args: Sequence[str]
) -> str:
    """A CronJob that runs `bmb plan run NAME` with the config from a ConfigMap."""
    zone = schedule.zone.key if isinstance(schedule, Cron) else "UTC"
    deadline = 6 * 3600 if plan.catch_up else 300
    arguments = ", ".join(
        f'"{a}"'
        for a in (
            "--config",
            "/etc/backup-my-bucket/config.toml",
            "plan",
            "run",
            plan.name,
            *args,
        )
    )
    return f"""\
# backup-my-bucket plan {plan.name}: {plan.describe()}
# The image: any Python image with `pip install 'backup-my-bucket[ops]'` (bmb on its PATH).
# The config file: kubectl create configmap {config_map} --from-file=config.toml=...
# Credentials: kubectl create secret generic {secret} \\
#   --from-literal=AWS_ACCESS_KEY_ID=... --from-literal=AWS_SECRET_ACCESS_KEY=...
# Pods keep no history between runs: push the metrics (plan run --pushgateway URL).
apiVersion: batch/v1
kind: CronJob
metadata:
  name: bmb-plan-{plan.name.lower().replace("_", "-").replace(".", "-")}
spec:
  schedule: "{_cron_of(plan, schedule)}"
  timeZone: "{zone}"
  concurrencyPolicy: Forbid          # never two runs of the plan at once
  startingDeadlineSeconds: {deadline}     # a missed run starts once, if this late at most
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 0                # a failed run waits for its next moment
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 120   # SIGTERM: the run stops at a safe point
          containers:
            - name: bmb
              image: registry.example.com/backup-my-bucket:latest
              command: ["bmb"]
              args: [{arguments}]
              envFrom:
                - secretRef:
                    name: {secret}
              volumeMounts:
                - name: config
                  mountPath: /etc/backup-my-bucket
                  readOnly: true
          volumes:
            - name: config
              configMap:
                name: {config_map}
"""
