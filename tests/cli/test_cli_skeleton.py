"""The CLI contract that exists before the engines: commands, global options, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from backup_my_bucket import __version__
from backup_my_bucket.cli import main as cli_main
from backup_my_bucket.errors import (
    BucketNotFound,
    ExitCode,
    ItemFailure,
    Locked,
    PartialFailure,
)

CONTRACT_COMMANDS = [
    "init", "sync", "backup", "snapshot", "snapshots", "show", "ls", "diff",
    "restore", "journals", "gc", "verify", "catalog", "promote", "plan", "daemon", "demo",
    "local-server",
]  # fmt: skip


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main.run(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_contract_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    listed = [line.split()[0] for line in out.split("Commands:")[1].strip().splitlines()]
    assert listed == CONTRACT_COMMANDS


@pytest.mark.parametrize("command", CONTRACT_COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    assert f"Usage: backup-my-bucket {command}" in out
    assert len(out.split("Options:")[0].strip().splitlines()) >= 3  # usage + a description


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and __version__ in out


def test_console_scripts_installed() -> None:
    bindir = Path(sys.executable).parent
    for name in ("backup-my-bucket", "bmb"):
        done = subprocess.run([bindir / name, "--version"], capture_output=True, text=True)
        assert done.returncode == 0 and __version__ in done.stdout


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["sync", "--source", "not-a-url", "--backup", "s3://b"], capsys)
    assert code == ExitCode.USAGE and "not an S3 URL" in err
    code, _, err = run(["no-such-command"], capsys)
    assert code == ExitCode.USAGE


def test_config_file_unknown_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[gc]\nkeep-lats = 3\n")
    code, _, err = run(["--config", str(config), "snapshots"], capsys)
    assert code == ExitCode.USAGE and "keep_lats" in err and "hint:" in err
    config.write_text("workerz = 3\n")
    code, _, err = run(["--config", str(config), "snapshots"], capsys)
    assert code == ExitCode.USAGE and "workerz" in err


def test_missing_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--config", "/nonexistent/bmb.toml", "snapshots"], capsys)
    assert code == ExitCode.USAGE and "config file not found" in err


def _probe_command(exc: BaseException | None) -> click.Command:
    @click.command(name="probe")
    @click.pass_obj
    def probe(app: cli_main.App) -> None:
        app.output.result({"workers": app.settings.workers, "endpoint": app.settings.endpoint_url})
        if exc is not None:
            raise exc

    return probe


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> object:
    def install(exc: BaseException | None = None) -> None:
        monkeypatch.setitem(cli_main.cli.commands, "probe", _probe_command(exc))

    return install


def test_config_env_flag_precedence(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    probe,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    probe()
    config = tmp_path / "c.toml"
    config.write_text('workers = 5\nendpoint-url = "http://from-file"\n')
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    _, out, _ = run(["--config", str(config), "--json", "probe"], capsys)
    assert out.strip() == '{"workers": 5, "endpoint": "http://from-file"}'
    monkeypatch.setenv("BMB_WORKERS", "7")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://from-env")
    _, out, _ = run(["--config", str(config), "--json", "probe"], capsys)
    assert out.strip() == '{"workers": 7, "endpoint": "http://from-env"}'
    _, out, _ = run(["--config", str(config), "--json", "--workers", "9", "probe"], capsys)
    assert '"workers": 9' in out


def _concurrency(app: cli_main.App) -> dict[str, object]:
    pace = app.copies("backup")
    return {
        "list": app.settings.workers,
        "copy": [pace.limit, pace.low, pace.high],
        "pool": app.s3_config("backup").max_pool_connections,
    }


@pytest.mark.parametrize(
    ("args", "env", "file", "expected"),
    [
        ([], {}, "", {"list": 32, "copy": [128, 16, 256], "pool": 272}),  # adapted by default
        (["--workers", "8"], {}, "", {"list": 8, "copy": [8, 8, 8], "pool": 24}),  # pins both
        (["--copy-workers", "100"], {}, "", {"list": 32, "copy": [100, 100, 100], "pool": 116}),
        (
            ["--workers", "8", "--list-workers", "4"],
            {},
            "",
            {"list": 4, "copy": [8, 8, 8], "pool": 24},
        ),
        ([], {"BMB_COPY_WORKERS": "50"}, "", {"list": 32, "copy": [50, 50, 50], "pool": 66}),
        ([], {}, "list-workers = 16\n", {"list": 16, "copy": [128, 16, 256], "pool": 272}),
        (["--list-workers", "300"], {}, "", {"list": 300, "copy": [128, 16, 256], "pool": 316}),
    ],
)
def test_listing_and_copy_concurrency(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    file: str,
    expected: dict[str, object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--workers pins listings and copies alike; --list-workers and --copy-workers one each;
    copies are adapted per endpoint otherwise; the connection pool always holds them all."""
    seen: list[dict[str, object]] = []

    @click.command(name="probe")
    @click.pass_obj
    def probe(app: cli_main.App) -> None:
        seen.append(_concurrency(app))

    monkeypatch.setitem(cli_main.cli.commands, "probe", probe)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "c.toml"
    config.write_text(file)
    code, _, err = run(["--config", str(config), *args, "probe"], capsys)
    assert code == 0, err
    assert seen == [expected]


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (BucketNotFound("nope"), ExitCode.NOT_FOUND, "bucket 'nope' does not exist"),
        (Locked("catalog is locked", hint="wait"), ExitCode.LOCKED, "hint: wait"),
        (
            PartialFailure("2 objects failed", [ItemFailure("k1", "v1", "boom")] * 2),
            ExitCode.PARTIAL,
            "failed: 'k1' (v1): boom",
        ),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED, "error: interrupted\nhint: rerun the same"),
        (RuntimeError("bug"), ExitCode.FAILURE, "error: internal error: RuntimeError: bug\nhint:"),
        (
            PermissionError(13, "Permission denied", "/var/lib/x"),
            ExitCode.FAILURE,
            "error: permission denied: /var/lib/x\nhint: check that path's permissions",
        ),
        (
            click.BadParameter("no", param_hint="'--x'"),
            ExitCode.USAGE,
            "error: invalid value for '--x': no\nhint: see `backup-my-bucket probe --help`",
        ),
    ],
)
def test_one_handler_maps_errors_to_exit_codes(
    probe,
    exc: BaseException,
    code: int,
    text: str,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    probe(exc)
    got, _, err = run(["probe"], capsys)
    assert got == code
    assert text in err
    assert "Traceback" not in err  # only with --debug


def test_debug_shows_the_traceback(probe, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    probe(RuntimeError("bug"))
    got, _, err = run(["--debug", "probe"], capsys)
    assert got == ExitCode.FAILURE and "Traceback" in err
