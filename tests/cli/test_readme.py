"""The README's walkthrough, run as a new user would: its server command in one process,
its other commands in a shell, then Ctrl-C. The website must be back byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from backup_my_bucket.cli.commands.demo import SOURCE, _sample
from backup_my_bucket.storage.s3 import S3Config, S3Store

from ..processes import family

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.s3


def block(name: str) -> str:
    """The bash block that follows ``<!-- walkthrough: NAME -->`` in the README."""
    found = re.search(rf"<!-- walkthrough: {name} -->\n```bash\n(.*?)```", README.read_text(), re.S)
    assert found, f"README.md has no walkthrough block {name!r}"
    return found.group(1)


async def _kill_with_its_server(process: asyncio.subprocess.Process) -> None:
    """SIGKILL ``bmb local-server`` and what it started: its SeaweedFS runs in a session of
    its own, so killing the command alone would leave the server running."""
    members = family(process.pid)
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.communicate()
    psutil.wait_procs(members[1:], timeout=10)


def user_env(home: Path) -> dict[str, str]:
    """A new user's shell: our tools on PATH, a home of its own, no AWS settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BMB_", "XDG_"))}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


async def live_objects(env_file: Path) -> dict[str, bytes]:
    values = dict(re.findall(r"export (\w+)=(\S+)", env_file.read_text()))
    config = S3Config(
        endpoint_url=values["AWS_ENDPOINT_URL"],
        access_key=values["AWS_ACCESS_KEY_ID"],
        secret_key=values["AWS_SECRET_ACCESS_KEY"],
    )
    async with S3Store(config) as store:
        page = await store.list_objects_page(SOURCE.bucket)
        return {
            o.key: b"".join([c async for c in store.get(SOURCE.bucket, o.key)])
            for o in page.objects
        }


async def test_the_readme_walkthrough(tmp_path: Path) -> None:
    assert shutil.which("bmb", path=str(BIN)) and shutil.which("s5cmd", path=str(BIN))
    server_command = block("server").strip()
    assert server_command.startswith("bmb local-server") and "\n" not in server_command
    env = user_env(tmp_path)
    env_file = tmp_path / "bmb-local.env"
    server = await asyncio.create_subprocess_exec(
        "bash", "-c", f"exec {server_command}", env=env, cwd=tmp_path, stdout=-1, stderr=-1
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not env_file.exists() and server.returncode is None:
            assert time.monotonic() < deadline, "the server did not start"
            await asyncio.sleep(0.2)
        assert env_file.exists(), await server.communicate()
        assert env_file.stat().st_mode & 0o077 == 0  # the secret key: its owner's only
        before = await live_objects(env_file)
        assert len(before) == 61

        user = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", block("user"), env=env, cwd=tmp_path,
            stdout=-1, stderr=-1,
        )  # fmt: skip
        out_b, err_b = await asyncio.wait_for(user.communicate(), 300)
        out = out_b.decode()
        assert user.returncode == 0, out + err_b.decode()
        assert "copied 61 objects" in out  # the backup
        assert "would copy 21 objects" in out  # the dry run: 20 documents, 1 page
        assert "verified: the target matches the restoration point" in out
        assert "checked 61 versions, read 61 in full" in out
        assert out.count("docs/annual report") >= 2 * 20  # the dry run and the final ls
        assert await live_objects(env_file) == before
        assert before == {key: body for key, (body, _, _) in _sample(60).items()}

        server.send_signal(signal.SIGINT)  # Ctrl-C in the first terminal
        out_b, err_b = await asyncio.wait_for(server.communicate(), 30)
    finally:
        if server.returncode is None:
            await _kill_with_its_server(server)
    err = err_b.decode()
    assert server.returncode == 0, err
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in out_b.decode()
    assert "Stopping the local S3 server (interrupted)" in err and err.endswith("Stopped.\n")
    data_dir = re.search(r"data in (\S+) \(removed when it stops\)", err)
    assert data_dir and not Path(data_dir.group(1)).exists()
