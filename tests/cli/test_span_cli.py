"""Only real moments: `restore --at` and `snapshot --at` outside the restorable span (before
the history, in a span gc pruned, in the future) exit 2, name the span and change nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_my_bucket.clock import SystemClock
from backup_my_bucket.errors import ExitCode
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.protocol import ObjectStore
from backup_my_bucket.units import format_time, human_time

from .conftest import bmb, dry_run_lines, source_and_backup

pytestmark = pytest.mark.s3
PLUS2 = timezone(timedelta(hours=2))


async def everything(store: ObjectStore, *buckets: str) -> list[tuple[str, str, str]]:
    """Every version of every bucket, the reserved folders included: nothing may change."""
    return [(b, v.key, v.version_id) for b in buckets async for v in iter_versions(store, b)]


async def test_moments_outside_the_span_are_refused(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    src, bak = await source_and_backup(s3_store, "span")
    urls = ["--source", f"s3://{src}", "--backup", f"s3://{bak}"]
    moments = []
    for round_ in range(3):
        for i in range(20):
            await s3_store.put(src, f"f{i:02d}", f"{round_}".encode())
        code, out, err = await bmb(capsys, "--json", "backup", *urls)
        assert code == 0, err
        moments.append(datetime.fromisoformat(json.loads(out)["snapshot"]["at"]))
        await asyncio.sleep(1.1)
    code, out, _ = await bmb(capsys, "--json", "catalog", "info", "--backup", f"s3://{bak}")
    span = json.loads(out)["span"]
    assert span["start_from"] == "first sync"
    assert datetime.fromisoformat(span["earliest"]) <= moments[0]
    restore = ["restore", "--backup", f"s3://{bak}", "--to", f"s3://{src}"]
    snapshot = ["snapshot", "--backup", f"s3://{bak}"]

    async def refused(when: datetime, says: str) -> None:
        before = await everything(s3_store, src, bak)
        when = when.replace(microsecond=0)
        text = when.astimezone(PLUS2).isoformat()  # an offset: read as what it says
        for command in (restore, snapshot):
            code, _, err = await bmb(capsys, *command, "--at", text)
            assert code == ExitCode.USAGE, err
            assert says in err and format_time(when) in err
            assert f"restorable moments of s3://{bak}: earliest " in err and "latest " in err
        assert await everything(s3_store, src, bak) == before  # nothing changed

    await refused(moments[0] - timedelta(hours=2), "before the history")  # a time-zone slip
    await refused(datetime.now(PLUS2) + timedelta(hours=1), "in the future")

    code, _, err = await bmb(capsys, *restore, "--at", format_time(moments[0]), "--dry-run")
    assert code == 0, err  # the first backup's own snapshot instant is inside the history

    # a restorable moment given with an offset is echoed back in UTC
    code, out, err = await bmb(
        capsys, "--json", *restore, "--at", moments[1].astimezone(PLUS2).isoformat(), "--dry-run"
    )
    assert code == 0, err
    assert dry_run_lines(out)[1]["at"] == format_time(moments[1])
    code, out, err = await bmb(capsys, *restore, "--at", moments[1].astimezone(PLUS2).isoformat(),
                               "--dry-run")  # fmt: skip
    assert f"restore of {human_time(moments[1])}" in out

    # gc keeps the last snapshot only: the moments between the others are gone for good
    code, out, err = await bmb(
        capsys, "--json", "gc", "--backup", f"s3://{bak}", "--keep-last", "1"
    )
    assert code == 0, err
    await refused(moments[1], "before the history")  # gc pruned everything before the kept one
    code, out, err = await bmb(
        capsys, "--json", *restore, "--at", format_time(moments[2]), "--dry-run"
    )
    assert code == 0, err  # the kept snapshot's instant stays restorable


async def test_a_pruned_span_between_kept_points_is_refused(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    src, bak = await source_and_backup(s3_store, "gap")
    urls = ["--source", f"s3://{src}", "--backup", f"s3://{bak}"]
    ids, moments = [], []
    for round_ in range(3):
        await s3_store.put(src, "a", f"{round_}".encode())
        code, out, err = await bmb(capsys, "--json", "backup", *urls)
        assert code == 0, err
        ids.append(json.loads(out)["snapshot"]["id"])
        moments.append(datetime.fromisoformat(json.loads(out)["snapshot"]["at"]))
        await asyncio.sleep(1.1)
    # drop the middle snapshot by hand, then gc: the moments around it go
    code, _, err = await bmb(capsys, "catalog", "remove", ids[1], "--backup", f"s3://{bak}")
    assert code == 0, err
    code, _, err = await bmb(capsys, "gc", "--backup", f"s3://{bak}", "--keep-last", "2")
    assert code == 0, err
    inside = moments[1]
    for command in (
        ["restore", "--backup", f"s3://{bak}", "--to", f"s3://{src}"],
        ["snapshot", "--backup", f"s3://{bak}"],
    ):
        code, _, err = await bmb(capsys, *command, "--at", format_time(inside))
        assert code == ExitCode.USAGE, err
        assert "falls in a span gc pruned" in err
        assert f"{format_time(moments[0])} … {format_time(moments[2])}" in err
    code, out, _ = await bmb(capsys, "--json", "snapshots", "--backup", f"s3://{bak}")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [ids[0], ids[2]]


async def test_the_future_is_the_servers(
    cli_env: None,
    s3_store: ObjectStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This machine's clock a minute ahead: a moment it has passed but the server (which
    stamps every version) has not is still the future, for restore and snapshot alike."""
    src, bak = await source_and_backup(s3_store, "ahead")
    await s3_store.put(src, "k", b"k")
    code, _, err = await bmb(capsys, "backup", "--source", f"s3://{src}", "--backup", f"s3://{bak}")
    assert code == 0, err
    real = SystemClock.now
    monkeypatch.setattr(SystemClock, "now", lambda self: real(self) + timedelta(minutes=1))
    when = format_time(real(SystemClock()).replace(microsecond=0) + timedelta(seconds=20))
    before = await everything(s3_store, src, bak)
    for command in (["restore", "--to", f"s3://{src}"], ["snapshot"]):
        code, _, err = await bmb(capsys, *command, "--backup", f"s3://{bak}", "--at", when)
        assert code == ExitCode.USAGE, err
        assert "is in the future" in err and when in err
    assert await everything(s3_store, src, bak) == before
