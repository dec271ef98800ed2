"""plan list, plan run, plan history, plan systemd, plan kubernetes.

Plans are the config file's ``[plans.NAME]`` tables (ops/plans.py). The ops modules (and the
optional libraries behind them) are imported inside the commands, so `bmb --help` stays light
and a missing ``ops`` extra is one clear error, not a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ...errors import Terminated, UsageError
from ...ops import require_extra
from ...ops.history import History, RunRecord, default_state_dir
from ...ops.plans import Plan, parse_plans, select
from ...ops.report import headline, problem_lines, step_lines
from ...units import format_time
from ..app import App
from ..config import config_in_use

if TYPE_CHECKING:
    from ...engine.progress import Progress
    from ...ops.events import EventLog
    from ...ops.runner import Connection, Connector, PlanRunner

F = TypeVar("F", bound=Callable[..., Any])


def configured_plans(ctx: click.Context) -> dict[str, Plan]:
    """The plans of the config file in use (checked when it was loaded)."""
    return parse_plans((ctx.find_root().default_map or {}).get("plans", {}))


def config_path(ctx: click.Context) -> Path:
    """The config file in use, absolute (for generated units and "see more" hints)."""
    path = config_in_use(ctx.find_root().params.get("config"))
    if path is None:
        raise UsageError(
            "no config file: plans live in one",
            hint="create ./backup-my-bucket.toml with a [plans.NAME] table, or pass --config",
        )
    return path.resolve()


def bmb_command() -> str:
    """How this machine runs bmb: the script beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "bmb"
    return str(beside) if beside.is_file() else shutil.which("bmb") or "bmb"


def see_more(ctx: click.Context) -> str:
    path = config_in_use(ctx.find_root().params.get("config"))
    return f"bmb --config {path.resolve()}" if path is not None else "bmb"


def connector(app: App) -> Connector:
    """Opens, for each run, the stores and catalog of the plan's own settings (a plan may set
    endpoint-url, profile, region, catalog, workers; the rest comes from the global options)."""
    from ...ops.runner import Connection

    @contextlib.asynccontextmanager
    async def connect(plan: Plan) -> AsyncIterator[Connection]:
        settings = dataclasses.replace(app.settings, **plan.connection)
        if "workers" in plan.connection:  # a plan's workers pin every phase, as --workers does
            settings = dataclasses.replace(settings, copy_workers=settings.workers)
        plan_app = App(settings, app.output, app.clock)
        try:
            yield Connection(
                backup=await plan_app.store("backup"),
                catalog=await plan_app.catalog(plan.backup, writing=True),
                source=await plan_app.store("source") if plan.source else None,
                same_endpoint=plan_app.same_endpoint(),
                workers=plan_app.settings.workers,
                copy_workers=plan_app.copies("backup"),
            )
        finally:
            await plan_app.aclose()

    return connect


def plan_runner(
    ctx: click.Context,
    history: History,
    plans: Sequence[Plan],
    *,
    events: EventLog | None = None,
    progress: Callable[[], Progress] | None = None,
) -> PlanRunner:
    """The runner the plan and daemon commands share, with metrics of ``plans``."""
    from ...ops.metrics import PlanMetrics
    from ...ops.notify import Notifier
    from ...ops.runner import PlanRunner

    app: App = ctx.obj
    return PlanRunner(
        connector(app),
        history,
        app.clock,
        notifier=Notifier(app.clock, see_more=see_more(ctx)),
        metrics=PlanMetrics(plans, history),
        events=events,
        progress=progress,
    )


def exit_code_of(records: Sequence[RunRecord]) -> int:
    """0 if every run succeeded; the failing runs' code if they agree, else 1."""
    codes = {r.exit_code for r in records if r.exit_code}
    return 0 if not codes else codes.pop() if len(codes) == 1 else 1


def record_text(record: RunRecord) -> str:
    lines = [headline(record)]
    lines += [f"  {line}" for line in step_lines(record)]
    if not record.ok:
        lines += [f"  {line}" for line in problem_lines(record)]
    return "\n".join(lines)


def textfile_option(when: str) -> Callable[[F], F]:
    return click.option(
        "--textfile",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"{when}, write the metrics here (node_exporter's textfile collector).",
    )


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where run histories and plan locks live (default: the user data dir's plans/).",
)


@click.group()
@state_dir_option
@click.pass_context
def plan(ctx: click.Context, state_dir: Path | None) -> None:
    """Backup plans from the config file: list them, run them, see their history.

    A plan (a [plans.NAME] table) names a source and a backup bucket, a schedule, a retention
    policy for gc, a verify sample, hooks and notifications. `bmb daemon` runs the plans on
    their schedules; `plan systemd` and `plan kubernetes` write units for other schedulers.
    """
    ctx.meta["bmb.history"] = History(state_dir or default_state_dir())


def _history(ctx: click.Context) -> History:
    history = ctx.meta["bmb.history"]
    assert isinstance(history, History)
    return history


@plan.command("list")
@click.pass_context
def list_plans(ctx: click.Context) -> None:
    """List the configured plans: what they back up, when they run next, how they last ran."""
    require_extra()
    from ...ops.schedule import first_due, parse_schedule

    app: App = ctx.obj
    history = _history(ctx)
    now = app.clock.now()
    for p in configured_plans(ctx).values():
        records = [r for r in history.records(p.name) if r.counts_as_run]
        last = records[-1] if records else None
        next_run = None
        if p.schedule:
            schedule = parse_schedule(p)
            next_run, _ = first_due(schedule, history.last_slot(p.name), now, catch_up=p.catch_up)
        data: dict[str, Any] = {
            "name": p.name,
            "source": str(p.source) if p.source else None,
            "backup": str(p.backup),
            "steps": list(p.steps),
            "schedule": p.schedule,
            "timezone": p.timezone,
            "next_run": next_run,
            "last_run": None
            if last is None
            else {"status": last.status, "started": last.started, "exit_code": last.exit_code},
        }
        when = f"next {format_time(next_run)}" if next_run else "manual only"
        ran = f"last {last.status} {format_time(last.started)}" if last else "never ran"
        schedule_text = f"{p.schedule} ({p.timezone})" if p.schedule else "no schedule"
        app.output.item(data, f"{p.name}: {p.describe()}\n  {schedule_text}; {when}; {ran}")


@plan.command("run")
@click.argument("names", nargs=-1, metavar="NAME...")
@click.option("--all", "run_all", is_flag=True, help="Run every configured plan, one by one.")
@textfile_option("Afterwards")
@click.option(
    "--pushgateway", metavar="URL", help="Afterwards, push each plan's metrics to this gateway."
)
@click.pass_context
def run_plans(
    ctx: click.Context,
    names: tuple[str, ...],
    run_all: bool,
    textfile: Path | None,
    pushgateway: str | None,
) -> None:
    """Run plans now: backup → gc → verify as configured, under the plan's lock.

    Prints one summary per plan (a JSON line each with --json); hooks, notifications, the run
    history and the metrics work as under the daemon. Exit 0 when every run succeeded, else
    the failing runs' exit code (3 partial, 11 the plan or catalog was locked, ...).
    SIGTERM interrupts the run cleanly (recorded as interrupted, exit 143).
    """
    if bool(names) == run_all:
        raise UsageError("name the plans to run, or pass --all", hint="see `bmb plan list`")
    require_extra()
    app: App = ctx.obj
    everything = configured_plans(ctx)
    plans = select(everything, names)
    runner = plan_runner(ctx, _history(ctx), list(everything.values()), progress=app.progress)
    metrics = runner.metrics
    assert metrics is not None
    records: list[RunRecord] = []

    async def main() -> None:
        for p in plans:
            record = await runner.run(p)
            records.append(record)
            app.output.item(record.to_json(), record_text(record))
            if not record.ok and record.error:
                app.output.error(f"plan {p.name}: {record.error}", record.hint)
            if pushgateway:
                await _push(metrics, pushgateway, p.name, app)

    try:
        app.run(main)  # SIGTERM cancels the run (recorded as interrupted): exit 143
    except Terminated as exc:
        raise Terminated(
            f"interrupted by {exc.message.removeprefix('stopped by ')}: the run was recorded "
            "as interrupted",
            hint="rerun the plan: it continues where this run stopped",
        ) from None
    finally:
        if textfile is not None:
            _write_textfile(metrics, textfile, app)
    ctx.exit(exit_code_of(records))


async def _push(metrics: Any, gateway: str, name: str, app: App) -> None:
    try:
        await metrics.push(gateway, name)
    except OSError as exc:
        app.output.warn(f"could not push the metrics of plan {name} to {gateway}: {exc}")


def _write_textfile(metrics: Any, path: Path, app: App) -> None:
    try:
        metrics.write_textfile(path)
    except OSError as exc:
        app.output.warn(f"could not write the metrics to {path}: {exc}")


@plan.command("history")
@click.argument("name")
@click.option(
    "--limit", type=click.IntRange(0), default=20, show_default=True, help="The newest N (0: all)."
)
@click.pass_context
def history(ctx: click.Context, name: str, limit: int) -> None:
    """Show a plan's past runs, oldest first: when, how, what they did, what failed.

    With --json, each run's whole record as a JSON line (the summary hooks get on stdin).
    """
    app: App = ctx.obj
    records = _history(ctx).records(name)
    if not records and name not in configured_plans(ctx):
        select(configured_plans(ctx), [name])  # an unknown name: refused with the nearest one
    for record in records[-limit:] if limit else records:
        text = f"{format_time(record.started)}  {record.trigger:<8}  {headline(record)}"
        details = step_lines(record) + ([] if record.ok else problem_lines(record, limit=3))
        app.output.item(record.to_json(), "\n".join([text, *(f"    {d}" for d in details)]))


@plan.command("systemd")
@click.argument("name", required=False)
@click.option("--daemon", "for_daemon", is_flag=True, help="The daemon's service instead.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the unit files here (e.g. /etc/systemd/system) instead of printing them.",
)
@textfile_option("After each run of the units")
@click.pass_context
def systemd(
    ctx: click.Context,
    name: str | None,
    for_daemon: bool,
    output_dir: Path | None,
    textfile: Path | None,
) -> None:
    """Write a systemd service and timer that run plan NAME on its schedule.

    The timer's OnCalendar= is the plan's cron schedule (Persistent=true: one catch-up run
    after downtime); the service runs `bmb plan run NAME`. With --daemon, a service for
    `bmb daemon` instead.
    """
    require_extra()
    from ...ops.generate import daemon_unit, systemd_units
    from ...ops.schedule import parse_schedule

    app: App = ctx.obj
    args = ["--textfile", str(textfile)] if textfile else []
    config = str(config_path(ctx))
    if for_daemon:
        if name is not None:
            raise UsageError("--daemon takes no plan name: the daemon runs them all")
        units = daemon_unit(bmb_command(), config, args)
    else:
        if name is None:
            raise UsageError("name the plan", hint="see `bmb plan list`, or pass --daemon")
        (p,) = select(configured_plans(ctx), [name])
        units = systemd_units(p, parse_schedule(p), bmb_command(), config, args)
    _emit(app, units, output_dir, "systemctl daemon-reload && systemctl enable --now ")


@plan.command("kubernetes")
@click.argument("name")
@click.option("--config-map", default="bmb-config", show_default=True, help="Its ConfigMap.")
@click.option("--secret", default="bmb-credentials", show_default=True, help="Its Secret.")
@click.option("--pushgateway", metavar="URL", help="Have the job push its metrics here.")
@click.pass_context
def kubernetes(
    ctx: click.Context, name: str, config_map: str, secret: str, pushgateway: str | None
) -> None:
    """Write a Kubernetes CronJob that runs plan NAME on its schedule.

    concurrencyPolicy Forbid (never two runs at once) and a starting deadline (one catch-up
    run); the config file comes from a ConfigMap, credentials from a Secret.
    """
    require_extra()
    from ...ops.generate import kubernetes_cronjob
    from ...ops.schedule import parse_schedule

    app: App = ctx.obj
    (p,) = select(configured_plans(ctx), [name])
    args = ["--pushgateway", pushgateway] if pushgateway else []
    manifest = kubernetes_cronjob(p, parse_schedule(p), config_map, secret, args)
    app.output.result({"cronjob": manifest}, manifest)


def _emit(app: App, units: dict[str, str], output_dir: Path | None, enable: str) -> None:
    if output_dir is None:
        text = "\n".join(f"# --- {name}\n{body}" for name, body in units.items())
        app.output.result({"units": units}, text)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, body in units.items():
        (output_dir / name).write_text(body)
    timer = next((n for n in units if n.endswith(".timer")), next(iter(units)))
    app.output.result(
        {"written": [str(output_dir / n) for n in units]},
        f"wrote {', '.join(units)} in {output_dir}; then: {enable}{timer}",
    )


COMMANDS = [plan]
