"""daemon: run the configured plans on their schedules, serve their metrics."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from ...errors import UsageError
from ...ops import require_extra
from ...ops.history import History, default_state_dir
from ...ops.plans import select
from ...ops.signals import stop_on_signals
from ..app import App
from .plan import configured_plans, plan_runner, state_dir_option, textfile_option

DEFAULT_LISTEN = "127.0.0.1:9898"


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--metrics-listen {text!r} is not HOST:PORT", hint=DEFAULT_LISTEN)
    return host.strip("[]"), int(port)


@click.command()
@click.option(
    "--plan",
    "names",
    multiple=True,
    metavar="NAME",
    help="Run only this plan (repeatable; default: every plan with a schedule).",
)
@click.option(
    "--metrics-listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Serve /metrics (Prometheus) and /healthz here; 0.0.0.0 exposes them to the network.",
)
@click.option("--no-metrics", is_flag=True, help="Serve no metrics.")
@textfile_option("Also after every run")
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default="json",
    show_default=True,
    help="The log on stderr: JSON lines (one event each) or text.",
)
@state_dir_option
@click.pass_context
def daemon(
    ctx: click.Context,
    names: tuple[str, ...],
    metrics_listen: str,
    no_metrics: bool,
    textfile: Path | None,
    log_format: str,
    state_dir: Path | None,
) -> None:
    """Run the config file's plans on their schedules until SIGTERM.

    A plan never runs twice at once (a moment that comes while it runs is skipped); after
    downtime a plan whose moment passed runs once. SIGTERM or Ctrl-C: no new run starts, a
    running one stops at a safe point and is recorded as interrupted, exit 0. Logs are JSON
    lines on stderr; /metrics is served on 127.0.0.1 unless --metrics-listen says otherwise.
    """
    require_extra()
    from ...ops.daemon import Daemon, MetricsServer
    from ...ops.events import EventLog

    app: App = ctx.obj
    listen = None if no_metrics else _listen(metrics_listen)
    plans = select(configured_plans(ctx), names)
    unscheduled = [p.name for p in plans if not p.schedule]
    if names and unscheduled:
        raise UsageError(
            f"plan {unscheduled[0]!r} has no schedule", hint='add schedule = "15 2 * * *"'
        )
    plans = [p for p in plans if p.schedule]
    history = History(state_dir or default_state_dir())
    events = EventLog(sys.stderr, app.clock, json_lines=log_format == "json")
    runner = plan_runner(ctx, history, plans, events=events)
    metrics = runner.metrics
    assert metrics is not None
    scheduler = Daemon(
        plans, runner, history, app.clock, events=events, metrics=metrics, textfile=textfile
    )

    async def main() -> None:
        stop = asyncio.Event()

        def on_signal(name: str) -> None:
            events.emit("daemon.stopping", signal=name)
            stop.set()

        server = MetricsServer(metrics) if listen is not None else None
        if server is not None and listen is not None:
            address = await server.start(*listen)
            events.emit("metrics.listening", url=f"http://{address}/metrics")
        try:
            with stop_on_signals(on_signal):
                await scheduler.run(stop)
        finally:
            if server is not None:
                await server.stop()

    app.run(main)


COMMANDS = [daemon]
