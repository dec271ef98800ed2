"""One catalog per backup, whatever the machine or the spelling of the endpoint.

The issue this answers: snapshots taken through AWS_ENDPOINT_URL=http://127.0.0.1:P went to
one local catalog, the same bucket through a profile to another; gc through the second
deleted the versions the first one's snapshots needed. The catalog now lives in the backup
bucket, so every spelling, profile and control machine lists the same snapshots, and gc
through any of them keeps what every snapshot needs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import S3Server, is_data, unique_bucket
from .conftest import bmb, source_and_backup

pytestmark = pytest.mark.s3


def layout() -> dict[str, bytes]:
    """Folders beside files that share their prefix, an object over 5 MiB, odd keys."""
    keys = {
        "img0/a.png": b"a", "img0/b/c.png": b"c", "img0-thumb.png": b"t", "img0.idx": b"i",
        "img00": b"0", "caf\u00e9 menu.txt": b"menu", "q?x=1&y=%20.txt": b"q",
        "deep/" + "d/" * 20 + "leaf": b"leaf", "big.bin": bytes(range(256)) * (24 * 1024 + 7),
    }  # fmt: skip
    return keys


class Spellings:
    """The environments of one user reaching one server in different ways."""

    def __init__(self, server: S3Server, mp: pytest.MonkeyPatch, tmp: Path) -> None:
        self.server, self.mp, self.tmp = server, mp, tmp
        port = server.endpoint_url.rsplit(":", 1)[1]
        self.localhost = f"http://localhost:{port}"
        config = tmp / "aws-config"
        config.write_text(
            "[profile local]\n"
            f"endpoint_url = {self.localhost}\n"
            "region = us-east-1\n"
            f"aws_access_key_id = {server.access_key}\n"
            f"aws_secret_access_key = {server.secret_key}\n"
        )
        self.config = config

    def machine(self, name: str) -> None:
        """Another control machine: its own data and cache directories (no shared state)."""
        for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
            self.mp.setenv(var, str(self.tmp / name / var.lower()))

    def use(self, spelling: str) -> list[str]:
        """Set the environment for ``spelling``; return the global options it needs."""
        for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE", "AWS_PROFILE"):
            self.mp.delenv(var, raising=False)
        for name, value in self.server.env().items():
            if name != "AWS_ENDPOINT_URL":
                self.mp.setenv(name, value)
        if spelling == "env-127.0.0.1":
            self.mp.setenv("AWS_ENDPOINT_URL", self.server.endpoint_url)
            return []
        if spelling == "profile-localhost":
            self.mp.setenv("AWS_CONFIG_FILE", str(self.config))
            return ["--profile", "local"]
        assert spelling == "env-s3-localhost"
        self.mp.setenv("AWS_ENDPOINT_URL_S3", self.localhost)
        return []


async def test_every_spelling_and_machine_sees_one_catalog(
    s3_server: S3Server,
    s3_store: ObjectStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    src, bak = await source_and_backup(s3_store, "one")
    data = layout()
    for key, value in data.items():
        await s3_store.put(src, key, value)
    net = Spellings(s3_server, monkeypatch, tmp_path)
    backup = ["--backup", f"s3://{bak}"]
    taken: list[str] = []

    async def run(spelling: str, *args: str) -> tuple[int, str, str]:
        return await bmb(capsys, *net.use(spelling), "--json", *args)

    async def listed(spelling: str) -> list[str]:
        code, out, err = await run(spelling, "snapshots", *backup)
        assert code == 0, err
        return [json.loads(line)["id"] for line in out.splitlines()]

    async def verify_all(spelling: str) -> None:
        for snapshot_id in await listed(spelling):
            code, out, err = await run(spelling, "verify", snapshot_id, *backup)
            assert code == 0, err
            assert json.loads(out)["missing"] == 0

    spellings = ["env-127.0.0.1", "profile-localhost", "env-s3-localhost"]
    net.machine("laptop")
    for round_, spelling in enumerate(spellings):  # a backup through each spelling in turn
        await s3_store.put(src, f"img0/round{round_}.png", f"r{round_}".encode())
        await s3_store.put(src, "img0.idx", f"index {round_}".encode())
        if round_ == 1:
            await s3_store.delete(src, "img00")
        code, out, err = await run(spelling, "backup", "--source", f"s3://{src}", *backup)
        assert code == 0, (spelling, err)
        taken.append(json.loads(out)["snapshot"]["id"])
        await asyncio.sleep(1.1)
    for spelling in spellings:  # every spelling lists every snapshot
        assert await listed(spelling) == taken, spelling
    assert not (tmp_path / "laptop" / "xdg_data_home" / "backup-my-bucket" / "catalogs").exists()
    net.machine("control-2")  # another machine, nothing cached: the same list
    for spelling in spellings:
        assert await listed(spelling) == taken, spelling

    # gc through each spelling, one snapshot fewer each time: every kept one still verifies
    for keep, spelling in zip((3, 2, 1), reversed(spellings), strict=True):
        code, out, err = await run(spelling, "gc", *backup, "--keep-last", str(keep))
        assert code == 0, (spelling, err)
        assert set(json.loads(out)["snapshots_kept"]) == set(taken[-keep:])
        await verify_all(spellings[keep % 3])  # through another spelling
    # and the one left restores the source exactly as it was when it was taken
    restored = unique_bucket("one-dst")
    await s3_store.create_bucket(restored)
    code, _, err = await run(
        "profile-localhost", "restore", taken[-1], *backup, "--to", f"s3://{restored}"
    )
    assert code == 0, err
    state = {
        v.key: b"".join([c async for c in s3_store.get(restored, v.key)])
        async for v in iter_versions(s3_store, restored)
        if v.is_latest and not v.is_delete_marker and is_data(v.key)
    }
    want = {k: v for k, v in data.items() if k != "img00"}
    want.update({f"img0/round{r}.png": f"r{r}".encode() for r in range(3)})
    want["img0.idx"] = b"index 2"
    assert state == want
