"""`bmb plan` and `bmb daemon` through the CLI, against the real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backup_my_bucket.errors import ExitCode
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import Receiver, S3Server, unique_bucket
from .conftest import bmb

pytestmark = pytest.mark.s3

# a web site's layout: folders beside files that share their prefix, odd keys, a large object
KEYS = [
    *(f"img0-{i:04d}.jpg" for i in range(20)),
    "img0.idx",
    *(f"img0/{i:04d}.jpg" for i in range(20)),
    "caf\u00e9/\u65e5\u672c.txt",
    "with space/and  two",
]


async def buckets(store: ObjectStore, keys: list[str] = KEYS) -> tuple[str, str]:
    source, backup = unique_bucket("plsrc"), unique_bucket("plbak")
    for bucket in (source, backup):
        await store.create_bucket(bucket)
    await store.set_versioning(backup, True)
    limit = asyncio.Semaphore(16)

    async def put(key: str) -> None:
        async with limit:
            await store.put(source, key, key.encode())

    await asyncio.gather(*(put(key) for key in keys))
    await store.put(source, "big.bin", os.urandom(6 * 2**20))
    return source, backup


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def samples(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, s.labels.get("plan", "") + "/" + s.labels.get("status", ""))] = s.value
    return out


async def test_plan_run_list_history_and_textfile(
    cli_env: None, s3_store: ObjectStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, backup = await buckets(s3_store)
    config = write_config(
        tmp_path / "bmb.toml",
        f"""
[plans.site]
source = "s3://{source}"
backup = "s3://{backup}"
schedule = "15 2 * * *"
[plans.site.gc]
keep-last = 5
[plans.site.verify]
read-data = 100
""",
    )
    textfile = tmp_path / "textfile" / "bmb.prom"
    base = ("--config", str(config), "--json")
    code, out, err = await bmb(capsys, *base, "plan", "run", "site", "--textfile", str(textfile))
    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "ok" and record["plan"] == "site" and record["trigger"] == "manual"
    assert record["steps"]["sync"]["copied"] == len(KEYS) + 1
    assert record["steps"]["snapshot"]["keys"] == len(KEYS) + 1
    assert record["steps"]["verify"]["checked"] == len(KEYS) + 1
    assert record["steps"]["verify"]["missing"] == 0 and record["snapshots"] == 1

    metrics = samples(textfile.read_text())
    assert metrics[("bmb_plan_last_run_success", "site/")] == 1
    assert metrics[("bmb_plan_last_run_objects_copied", "site/")] == len(KEYS) + 1
    assert metrics[("bmb_plan_last_verify_missing", "site/")] == 0
    assert metrics[("bmb_plan_snapshots", "site/")] == 1

    code, out, err = await bmb(capsys, *base, "plan", "list")
    assert code == 0, err
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert listed["name"] == "site" and listed["steps"] == ["backup", "gc", "verify"]
    assert listed["next_run"].endswith("T02:15:00Z") and listed["last_run"]["status"] == "ok"

    code, out, err = await bmb(capsys, *base, "plan", "history", "site")
    assert code == 0, err
    (line,) = out.splitlines()
    assert json.loads(line)["run_id"] == record["run_id"]
    code, out, err = await bmb(capsys, "--config", str(config), "plan", "history", "site")
    assert code == 0 and "plan site succeeded" in out and "sync: copied" in out

    # the source bucket disappears: exit 10, said on stderr, recorded; last success unchanged
    config.write_text(config.read_text().replace(f"s3://{source}", f"s3://{source}-gone"))
    code, out, err = await bmb(capsys, *base, "plan", "run", "--all", "--textfile", str(textfile))
    assert code == ExitCode.NOT_FOUND
    assert json.loads(out)["failed_step"] == "sync"
    assert "error: plan site: bucket" in err and "does not exist" in err
    after = samples(textfile.read_text())
    assert after[("bmb_plan_last_run_success", "site/")] == 0
    assert after[("bmb_plan_consecutive_failures", "site/")] == 1
    assert (
        after[("bmb_plan_last_success_timestamp_seconds", "site/")]
        == metrics[("bmb_plan_last_success_timestamp_seconds", "site/")]
    )


async def test_plan_usage_errors(
    cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.toml", '[plans.a]\nsource = "s3://x"\nbackup = "s3://y"\n')
    code, _, err = await bmb(capsys, "--config", str(config), "plan", "run")
    assert code == ExitCode.USAGE and "name the plans to run, or pass --all" in err
    code, _, err = await bmb(capsys, "--config", str(config), "plan", "run", "b")
    assert code == ExitCode.USAGE and "no plan named 'b'" in err
    code, _, err = await bmb(capsys, "--config", str(config), "plan", "history", "aa")
    assert code == ExitCode.USAGE and "did you mean 'a'?" in err
    code, _, err = await bmb(capsys, "--config", str(config), "daemon")
    assert code == ExitCode.USAGE and "no plan has a schedule" in err
    code, _, err = await bmb(capsys, "--config", str(config), "plan", "history", "../etc")
    assert code == ExitCode.USAGE and "'../etc' is not a plan name" in err
    config.write_text(config.read_text() + '[daemon]\nmetrics-listen = "9"\n')
    code, _, err = await bmb(capsys, "--config", str(config), "daemon")
    assert code == ExitCode.USAGE and "not HOST:PORT" in err  # the [daemon] table is read


async def test_without_the_ops_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "c.toml", '[plans.a]\nsource = "s3://x"\nbackup = "s3://y"\n')
    monkeypatch.setitem(sys.modules, "cronsim", None)  # as if it were not installed
    for command in (["plan", "list"], ["plan", "run", "a"], ["daemon"]):
        code, _, err = await bmb(capsys, "--config", str(config), *command)
        assert code == ExitCode.FAILURE, command
        assert "need cronsim, which is not installed" in err
        assert "hint: pip install 'backup-my-bucket[ops]'" in err and "Traceback" not in err
    code, _, err = await bmb(capsys, "--config", str(config), "plan", "history", "a")
    assert code == 0, err  # reading the history needs nothing optional


async def test_systemd_and_kubernetes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(
        tmp_path / "my config.toml",
        '[plans.site]\nsource = "s3://x"\nbackup = "s3://y"\nschedule = "0 3 * * 1-5"\n',
    )
    base = ("--config", str(config))
    code, out, err = await bmb(capsys, *base, "plan", "systemd", "site")
    assert code == 0, err
    assert "# --- bmb-plan-site.service" in out and "# --- bmb-plan-site.timer" in out
    assert f'--config "{config.resolve()}" plan run site' in out
    assert "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 03:00:00 UTC" in out
    units = tmp_path / "units"
    code, out, err = await bmb(
        capsys, *base, "plan", "systemd", "site", "--output-dir", str(units), "--textfile", "/m"
    )
    assert code == 0, err
    assert sorted(p.name for p in units.iterdir()) == [
        "bmb-plan-site.service",
        "bmb-plan-site.timer",
    ]
    assert "plan run site --textfile /m\n" in (units / "bmb-plan-site.service").read_text()
    code, out, err = await bmb(capsys, *base, "plan", "systemd", "--daemon")
    assert code == 0 and "daemon\n" in out and "Restart=on-failure" in out
    code, out, err = await bmb(capsys, *base, "plan", "kubernetes", "site")
    assert code == 0, err
    assert 'schedule: "0 3 * * 1-5"' in out and "kind: CronJob" in out


async def test_daemon_process_sigterm_mid_sync_and_metrics(
    s3_server: S3Server,
    s3_store: ObjectStore,
    tmp_path: Path,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real `bmb daemon` process: /metrics during a run, SIGTERM mid-sync, exit 0, the run
    recorded as interrupted; `plan run` afterwards converges."""
    keys = [f"d/{i:05d}" for i in range(300)]
    source, backup = await buckets(s3_store, keys)
    config = write_config(
        tmp_path / "bmb.toml",
        f"""
[plans.site]
source = "s3://{source}"
backup = "s3://{backup}"
schedule = "every 1h"
workers = 1
[plans.site.notify]
healthchecks = "{receiver.url}/ping/abc"
""",
    )
    state = tmp_path / "state"
    env = {**os.environ, **s3_server.env()}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backup_my_bucket", "--config", str(config), "daemon",
        "--metrics-listen", "127.0.0.1:0", "--state-dir", str(state),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    events: list[dict[str, object]] = []

    async def next_event(name: str) -> dict[str, object]:
        assert process.stderr is not None
        while True:
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, f"the daemon ended before {name}: {events}"
            events.append(json.loads(line))
            if events[-1]["event"] == name:
                return events[-1]

    try:
        url = str((await next_event("metrics.listening"))["url"])
        await next_event("run.started")
        async with aiohttp.ClientSession() as session:
            for _ in range(200):  # until the sync has copied something
                async with session.get(url) as response:
                    during = samples(await response.text())
                if during.get(("bmb_plan_run_progress_objects", "site/"), 0) >= 20:
                    break
                await asyncio.sleep(0.05)
        assert during[("bmb_plan_running", "site/")] == 1
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        await next_event("daemon.stopped")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert [e["event"] for e in events][-3:] == [
        "daemon.stopping",
        "run.interrupted",
        "daemon.stopped",
    ]
    interrupted = next(e for e in events if e["event"] == "run.interrupted")
    assert interrupted["failed_step"] == "sync" and interrupted["exit_code"] == 130
    assert receiver.paths() == ["/ping/abc/start"]  # no end ping for an interrupted run

    # `plan run` (a systemd oneshot, say) gets SIGTERM mid-sync too: exit 143, recorded
    async def backed_up() -> int:
        page = await s3_store.list_versions_page(backup, max_keys=1000)
        return sum(1 for v in page.entries if v.is_latest and not v.is_delete_marker)

    copied_by_daemon = await backed_up()
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backup_my_bucket", "--config", str(config), "plan",
        "--state-dir", str(state), "run", "site",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        for _ in range(400):
            if await backed_up() >= copied_by_daemon + 5:
                break
            await asyncio.sleep(0.02)
        run.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(run.wait(), 60) == ExitCode.TERMINATED
    finally:
        if run.returncode is None:
            run.kill()
            await run.wait()
    assert run.stderr is not None
    assert "interrupted by SIGTERM" in (await run.stderr.read()).decode()
    assert copied_by_daemon + 5 <= await backed_up() < len(keys) + 1

    config.write_text(config.read_text().replace("workers = 1\n", ""))  # the rerun: faster
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    code, out, err = await bmb(
        capsys, "--config", str(config), "--json", "plan", "--state-dir", str(state), "run", "site"
    )
    assert code == 0, err
    record = json.loads(out)
    assert 0 < record["steps"]["sync"]["copied"] < len(keys) + 1  # the rest, not everything
    assert record["steps"]["snapshot"]["keys"] == len(keys) + 1
    code, out, _ = await bmb(
        capsys,
        "--config",
        str(config),
        "--json",
        "plan",
        "--state-dir",
        str(state),
        "history",
        "site",
    )
    statuses = [json.loads(line)["status"] for line in out.splitlines()]
    assert statuses == ["interrupted", "interrupted", "ok"]
