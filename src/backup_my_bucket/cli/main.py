"""The command-line entry point and the one place that turns errors into exit codes."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Literal

import click

from .. import __version__
from ..errors import (
    BackupError,
    ExitCode,
    IncompleteListing,
    Interrupted,
    PartialFailure,
    Terminated,
    UsageError,
)
from ..storage.paging import Paging
from ..storage.s3.redact import redact, remember
from .config import check_config, check_environment, find_config_arg, load_config
from .lazy import LazyGroup
from .logs import close_logging, setup_logging
from .options import ENDPOINT, EXECUTOR
from .output import Output
from .settings import (
    COPY_HIGH,
    COPY_LOW,
    DEFAULT_LIST_WORKERS,
    RERUN,
    Settings,
    workers_settings,
)

PROG = "backup-my-bucket"
_state: dict[str, object] = {"debug": False, "output": None}
log = logging.getLogger(__name__)


# The commands in the workflow's order (docs/cli.md): the module under cli/commands/ that
# defines each (imported when it runs) and its summary for --help (tests/cli/test_docs.py
# checks it against the command's own help).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("backup", "Check access to both buckets and enable versioning on the backup bucket."),
    "sync": ("backup", "Copy new and changed objects from the source into the backup bucket."),
    "backup": ("backup", "Sync, then take a snapshot: one restoration point in one command."),
    "snapshot": ("snapshots", "Record a restoration point: the version of every key in the "
                 "backup bucket at one instant."),
    "snapshots": ("snapshots", "List the restoration points in the catalog, oldest first."),
    "show": ("snapshots", "Show one snapshot's metadata."),
    "ls": ("snapshots", "List the keys and versions a snapshot holds (in key order)."),
    "diff": ("snapshots", "Show what changed between two snapshots, or between a snapshot and "
             "the live backup."),
    "restore": ("restore", "Bring a bucket back to a snapshot (ID, a prefix of one, or `latest`) "
                "or to a moment (--at TIME --backup S3URL)."),
    "journals": ("restore", "List the restore journals, oldest first: those failed or "
                 "interrupted restores left, and the proofs completed ones keep."),
    "gc": ("manage", "Drop snapshots past the retention policy and the versions only they "
           "needed."),
    "verify": ("manage", "Check that every version a snapshot needs still exists, with its "
               "size and ETag."),
    "catalog": ("catalog", "Where a backup's snapshots live: show it, move old catalogs into "
                "it, drop snapshots."),
    "promote": ("promote", "Fallback: make a restoration point the new primary and start a "
                "fresh backup relationship."),
    "plan": ("plan", "Backup plans from the config file: list them, run them, see their "
             "history."),
    "daemon": ("daemon", "Run the config file's plans on their schedules until SIGTERM."),
    "demo": ("demo", "The whole story on an embedded local S3 server: back up, break, "
             "restore, verify."),
    "local-server": ("localserver", "Run a local S3 server (SeaweedFS, on 127.0.0.1 only) to "
                     "try the tool on, until Ctrl-C."),
}  # fmt: skip


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
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
    type=ENDPOINT,
    envvar=["BMB_ENDPOINT_URL", "AWS_ENDPOINT_URL"],
    help="S3 endpoint for both sides, http(s)://host[:port] (else AWS_ENDPOINT_URL, else AWS).",
)
@click.option(
    "--source-endpoint-url", type=ENDPOINT, help="Endpoint of the source side, when it differs."
)
@click.option(
    "--backup-endpoint-url", type=ENDPOINT, help="Endpoint of the backup side, when it differs."
)
@click.option("--profile", help="AWS profile (otherwise the usual credential chain).")
@click.option("--region", help="AWS region.")
@click.option(
    "--catalog",
    metavar="PATH|s3://BUCKET/PREFIX",
    help="Where snapshots live (default: in the backup bucket, under .backup-my-bucket/; the "
    "bucket records which catalog is its own).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    help="Concurrent S3 requests in every phase: pins --list-workers and --copy-workers.",
)
@click.option(
    "--list-workers",
    type=click.IntRange(1, 1024),
    help=f"Concurrent listing requests.  [default: {DEFAULT_LIST_WORKERS}]",
)
@click.option(
    "--copy-workers",
    type=click.IntRange(1, 1024),
    help=f"Concurrent copies and deletes, pinned.  [default: adapted per endpoint between "
    f"{COPY_LOW} and {COPY_HIGH}: more while throughput grows, fewer on 503 SlowDown]",
)
@click.option(
    "--audit/--no-audit",
    default=True,
    show_default=True,
    help="Check every version listing of sync, snapshot and restore against ListObjectsV2 (a "
    "failed check exits 1, naming the missed keys; a restore target is read with "
    "ListObjectsV2 itself). --no-audit saves that pass on servers with no known listing "
    "deviation; where the server names itself SeaweedFS (or --list-paging tree) the audit "
    "always runs.",
)
@click.option("--list-page-size", type=click.IntRange(1, 1000), default=1000, hidden=True)
@click.option(
    "--list-paging",
    type=click.Choice(["auto", *(p.value for p in Paging)]),
    default="auto",
    show_default=True,
    help="How version listings page: auto (from the server's Server header), tree "
    "(SeaweedFS's safe paging: for a SeaweedFS behind a proxy that hides that header), naive "
    "(the server's own markers: servers that page in key order).",
)
@click.option(
    "--executor",
    type=EXECUTOR,
    default="local",
    show_default=True,
    metavar="local|dask://HOST:PORT",
    help="Where copies, deletes and checks run: in this process, or as work units on the Dask "
    "cluster whose scheduler is at HOST:PORT, its workers sharing one request rate per "
    "destination, limited only after 503 SlowDown; snapshot's, restore --at's and diff's "
    "version listings page their key ranges there too (needs the dask extra; docs/scale.md).",
)
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable output on stdout.")
@click.option(
    "--fast-path/--no-fast-path",
    default=True,
    show_default=True,
    help="Send copies and version listings through the lean request path (docs/design.md); "
    "--no-fast-path sends every request through botocore.",
)
@click.option(
    "--addressing-style",
    type=click.Choice(["auto", "path", "virtual"]),
    default="auto",
    show_default=True,
    help="S3 addressing: auto is path style on a custom endpoint and botocore's choice on AWS "
    "(virtual-hosted where the bucket name allows); virtual for endpoints that want "
    "bucket.host names.",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More on stderr: -v what the command does (endpoints, catalog, phases), -vv every "
    "S3 request too. Never credentials.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Only warnings and errors on stderr: no progress, no narration (results still on stdout).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="PATH",
    help="Also append a log to PATH (INFO and up, and every line printed for people): text, "
    "or JSON lines when PATH ends in .jsonl or .json.",
)
@click.option("--debug", is_flag=True, help="Like -vv, plus tracebacks (never credentials).")
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
    workers: int | None,
    list_workers: int | None,
    copy_workers: int | None,
    audit: bool,
    list_page_size: int,
    list_paging: str,
    executor: str,
    json_mode: bool,
    fast_path: bool,
    addressing_style: Literal["auto", "path", "virtual"],
    verbose: int,
    quiet: bool,
    log_file: Path | None,
    debug: bool,
) -> None:
    """backup-my-bucket: backups, restoration points and point-in-time restore for S3 buckets.

    Copy a source bucket into a versioned backup bucket (sync), record restoration points
    (snapshot), bring a bucket back to any of them or to any moment (restore), and drop what
    the retention policy no longer needs (gc).
    """
    listing, copies = workers_settings(workers, list_workers, copy_workers)
    settings = Settings(
        endpoint_url=endpoint_url,
        source_endpoint_url=source_endpoint_url,
        backup_endpoint_url=backup_endpoint_url,
        profile=profile,
        region=region,
        catalog=catalog,
        workers=listing,
        copy_workers=copies,
        list_page_size=list_page_size,
        list_paging=None if list_paging == "auto" else Paging(list_paging),
        audit=audit,
        executor=executor,
        json=json_mode,
        debug=debug,
        fast_path=fast_path,
        addressing_style=addressing_style,
    )
    if quiet and (verbose or debug):
        raise UsageError(
            "-q asks for less on stderr, -v/--debug for more: give one of them",
            hint="with --log-file PATH, the details go to the file while stderr stays quiet",
        )
    output = Output(json_mode, quiet=quiet)
    _state.update(debug=debug, output=output)
    setup_logging(verbose, debug, log_file)
    log.info("backup-my-bucket %s: %s", __version__, ctx.invoked_subcommand or "")
    from .app import App  # the catalog, the stores: once a command runs, not for --help

    ctx.obj = App(settings, output)


def _traceback() -> None:
    click.echo(redact(traceback.format_exc()).rstrip("\n"), err=True)


def _report(exc: BackupError, output: Output) -> None:
    output.error(redact(exc.message), redact(exc.hint) if exc.hint else None)
    if isinstance(exc, IncompleteListing) and len(exc.keys) > IncompleteListing.SHOWN:
        for key in exc.keys[IncompleteListing.SHOWN : 1000]:
            output.info(f"  missed: {key!r}")
    if isinstance(exc, PartialFailure):
        shown = exc.failures[:20]
        for failure in shown:
            version = f" ({failure.version_id})" if failure.version_id else ""
            output.detail(redact(f"  failed: {failure.key!r}{version}: {failure.reason}"))
        if len(exc.failures) > len(shown):
            output.detail(f"  ... and {len(exc.failures) - len(shown)} more")


def _sentence(text: str) -> str:
    """click's "Missing option '--backup'." in our style: "missing option '--backup'"."""
    text = text.strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def from_click(exc: click.ClickException) -> BackupError:
    """click's own errors (bad options, missing arguments) as ours: the same ``error:`` and
    ``hint:`` lines as every other error; usage errors exit 2."""
    hint = getattr(exc, "hint", None)
    if isinstance(exc, click.NoSuchOption):
        message = _sentence(exc.message)
        root = exc.ctx.find_root() if exc.ctx is not None else None
        if root is not None and root is not exc.ctx and _option_of(root.command, exc.option_name):
            hint = (
                f"{exc.option_name} is a global option: give it before the command, as in "
                f"`{root.command_path} {exc.option_name} {exc.ctx.info_name if exc.ctx else ''}"
                " ...`"
            )
        elif exc.possibilities:
            hint = f"did you mean {exc.possibilities[0]}?"  # the closest first
    else:
        message = _sentence(exc.format_message())
    if not isinstance(exc, click.UsageError):
        return BackupError(message, hint=hint)
    if hint is None and exc.ctx is not None:
        hint = f"see `{exc.ctx.command_path} --help`"
    return UsageError(message, hint=hint)


def _option_of(command: click.Command, name: str) -> bool:
    return any(name in p.opts for p in command.params if isinstance(p, click.Option))


def from_os_error(exc: OSError) -> BackupError:
    """A local file or directory the command could not use (disk full, permissions)."""
    what = _sentence(exc.strerror or str(exc))
    where = f": {exc.filename}" if exc.filename else ""
    return BackupError(
        f"{what}{where}", hint="check that path's permissions and the free space on its disk"
    )


class _SigTerm(BaseException):
    """SIGTERM outside a command's event loop (App.run handles it inside). A BaseException,
    like KeyboardInterrupt, so that no ``except Exception`` swallows it."""


def _raise_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _SigTerm


@contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    """SIGTERM ends the process as Ctrl-C does (a message, clean-ups, exit 143), not at once.
    Only the main thread can install handlers (tests run the CLI in threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; every error is turned into one here."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state.update(debug="--debug" in args, output=None)
    # what the environment holds is redacted from the start, before any store registers more
    remember(*(os.environ.get(f"AWS_{n}") for n in ("SECRET_ACCESS_KEY", "SESSION_TOKEN")))
    setup_logging()  # until the options are read: warnings on stderr, nothing more
    try:
        with _sigterm_as_exception():
            return _run(args)
    except _SigTerm:  # between the loop's end and the process's (rare): same words
        return _fail(Terminated("stopped by SIGTERM", hint=RERUN))
    finally:
        close_logging()


def _fail(exc: BackupError) -> int:
    output = _state["output"]
    _report(exc, output if isinstance(output, Output) else Output(False))
    if _state["debug"]:
        _traceback()
    log.debug("exit %d", exc.exit_code)
    return exc.exit_code


def _run(args: list[str]) -> int:
    try:
        path, config = load_config(find_config_arg(args))
        check_config(path, config, cli)
        for warning in check_environment(os.environ, cli):
            Output(False).warn(warning)
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
        return _fail(Interrupted("interrupted", hint=RERUN))
    except click.ClickException as exc:
        return _fail(from_click(exc))
    except BackupError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        return _fail(Interrupted("interrupted", hint=RERUN))
    except _SigTerm:
        return _fail(Terminated("stopped by SIGTERM", hint=RERUN))
    except OSError as exc:
        return _fail(from_os_error(exc))
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        hint = None if _state["debug"] else "rerun with --debug for a traceback, and report it"
        return _fail(BackupError(f"internal error: {type(exc).__name__}: {exc}", hint=hint))


def main() -> None:
    sys.exit(run())
