"""The command-line entry point and the one place that turns errors into exit codes."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

import click

from .. import __version__
from ..errors import BackupError, ExitCode, PartialFailure
from ..storage.s3.redact import RedactingFormatter, redact, remember
from .app import DEFAULT_WORKERS, App, Settings
from .commands import backup, daemon, demo, manage, plan, promote, restore, snapshots
from .config import check_config, find_config_arg, load_config
from .output import Output

PROG = "backup-my-bucket"
_state: dict[str, object] = {"debug": False, "output": None}


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # every line, tracebacks included, without a credential (by name and by every value held)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    # botocore's own DEBUG is a firehose of signing internals; requests are enough. Without
    # --debug, undo what an earlier in-process run set (request bodies must not be logged).
    logging.getLogger("botocore").setLevel(logging.INFO if debug else logging.NOTSET)
    logging.getLogger("botocore.endpoint").setLevel(logging.DEBUG if debug else logging.NOTSET)


class _OrderedGroup(click.Group):
    """Lists commands in the order of the workflow (docs/cli.md), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    cls=_OrderedGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name=PROG)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="TOML config file (default ./backup-my-bucket.toml, then the user config dir).",
)
@click.option(
    "--endpoint-url",
    envvar=["BMB_ENDPOINT_URL", "AWS_ENDPOINT_URL"],
    help="S3 endpoint for both sides (else AWS_ENDPOINT_URL, else AWS).",
)
@click.option("--source-endpoint-url", help="Endpoint of the source side, when it differs.")
@click.option("--backup-endpoint-url", help="Endpoint of the backup side, when it differs.")
@click.option("--profile", help="AWS profile (otherwise the usual credential chain).")
@click.option("--region", help="AWS region.")
@click.option(
    "--catalog",
    metavar="PATH|s3://BUCKET/PREFIX",
    help="Where snapshots live (default: a directory per backup bucket under the user data dir).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Concurrent S3 requests.",
)
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable output on stdout.")
@click.option(
    "--fast-path/--no-fast-path",
    default=True,
    show_default=True,
    help="Send copies and version listings on custom endpoints through the lean request path "
    "(docs/design.md); --no-fast-path sends every request through botocore.",
)
@click.option("--debug", is_flag=True, help="Tracebacks and request logs (never credentials).")
@click.pass_context
def cli(
    ctx: click.Context,
    config: str | None,
    endpoint_url: str | None,
    source_endpoint_url: str | None,
    backup_endpoint_url: str | None,
    profile: str | None,
    region: str | None,
    catalog: str | None,
    workers: int,
    json_mode: bool,
    fast_path: bool,
    debug: bool,
) -> None:
    """backup-my-bucket: backups, restoration points and point-in-time restore for S3 buckets.

    Copy a source bucket into a versioned backup bucket (sync), record restoration points
    (snapshot), bring a bucket back to any of them or to any moment (restore), and drop what
    the retention policy no longer needs (gc).
    """
    settings = Settings(
        endpoint_url=endpoint_url,
        source_endpoint_url=source_endpoint_url,
        backup_endpoint_url=backup_endpoint_url,
        profile=profile,
        region=region,
        catalog=catalog,
        workers=workers,
        json=json_mode,
        debug=debug,
        fast_path=fast_path,
    )
    output = Output(json_mode)
    _state.update(debug=debug, output=output)
    _setup_logging(debug)
    ctx.obj = App(settings, output)


# the workflow's order
for module in (backup, snapshots, restore, manage, promote, plan, daemon, demo):
    for command in module.COMMANDS:
        cli.add_command(command)


def _traceback() -> None:
    click.echo(redact(traceback.format_exc()).rstrip("\n"), err=True)


def _report(exc: BackupError, output: Output) -> None:
    output.error(redact(exc.message), redact(exc.hint) if exc.hint else None)
    if isinstance(exc, PartialFailure):
        shown = exc.failures[:20]
        for failure in shown:
            version = f" ({failure.version_id})" if failure.version_id else ""
            output.info(redact(f"  failed: {failure.key!r}{version}: {failure.reason}"))
        if len(exc.failures) > len(shown):
            output.info(f"  ... and {len(exc.failures) - len(shown)} more")


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; every error is turned into one here."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state.update(debug="--debug" in args, output=None)
    # what the environment holds is redacted from the start, before any store registers more
    remember(*(os.environ.get(f"AWS_{n}") for n in ("SECRET_ACCESS_KEY", "SESSION_TOKEN")))
    try:
        path, config = load_config(find_config_arg(args))
        check_config(path, config, cli)
        result = cli.main(
            args=args,
            prog_name=PROG,
            standalone_mode=False,
            default_map=config,
            auto_envvar_prefix="BMB",
        )
        return int(result) if isinstance(result, int) else ExitCode.OK
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE if isinstance(exc, click.UsageError) else ExitCode.FAILURE
    except BackupError as exc:
        output = _state["output"]
        _report(exc, output if isinstance(output, Output) else Output(False))
        if _state["debug"]:
            _traceback()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted: rerun the same command to continue", err=True)
        return ExitCode.INTERRUPTED
    except Exception as exc:
        click.echo(redact(f"internal error: {type(exc).__name__}: {exc}"), err=True)
        if _state["debug"]:
            _traceback()
        else:
            click.echo("hint: rerun with --debug for a traceback, and report it", err=True)
        return ExitCode.FAILURE


def main() -> None:
    sys.exit(run())
