"""One run of a plan on the in-memory store: steps, outcome, hooks, notifications, metrics."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from backup_my_bucket.catalog.index import SnapshotMeta
from backup_my_bucket.engine import backup as backup_engine
from backup_my_bucket.errors import ExitCode
from backup_my_bucket.model import VersionRef
from backup_my_bucket.ops.history import History
from backup_my_bucket.ops.hooks import HOOK_VARIABLES
from backup_my_bucket.ops.metrics import PlanMetrics

from ..conftest import Receiver
from .conftest import World


def scrape(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """(sample name, plan) → value, parsed the way Prometheus reads the text format."""
    from prometheus_client import generate_latest

    return parse(generate_latest(registry).decode())


def parse(text: str) -> dict[tuple[str, str], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.labels.get("plan", "")
            if "status" in sample.labels:
                key += "/" + sample.labels["status"]
            samples[(sample.name, key)] = sample.value
    return samples


async def test_backup_gc_verify_in_one_run(world: World) -> None:
    await world.fill("src", 30)
    plan = world.plan("site", gc={"keep_last": 2}, verify={"read_data": 100}, tags=["nightly"])
    runner = world.runner([plan])
    first = await runner.run(plan)
    assert first.status == "ok" and first.exit_code == 0, first
    assert first.steps["sync"]["copied"] == 30
    assert first.steps["snapshot"]["keys"] == 30 and first.steps["snapshot"]["tags"] == ["nightly"]
    assert first.steps["verify"]["checked"] == 30 and first.steps["verify"]["read"] == 30
    assert first.steps["gc"]["snapshots_removed"] == []
    assert first.snapshots == 1 and first.oldest_restorable == first.newest_restorable

    for i in range(2):  # changes between runs; gc keeps 2 snapshots
        world.clock.advance(timedelta(hours=1))
        await world.store.put("src", f"k{i:05d}", b"changed")
        await runner.run(plan)
    last = world.history.records("site")[-1]
    assert last.ok and last.steps["sync"]["copied"] == 1
    assert len(last.steps["gc"]["snapshots_removed"]) == 1 and last.snapshots == 2
    assert last.steps["gc"]["versions_deleted"] == 1  # the first version of k00000
    assert len(await world.catalog().list()) == 2
    assert [r.trigger for r in world.history.records("site")] == ["manual"] * 3


async def test_failed_run_moves_failure_metrics_and_keeps_last_success(world: World) -> None:
    await world.fill("src", 5)
    plan = world.plan("site")
    runner = world.runner([plan])
    assert runner.metrics is not None
    ok = await runner.run(plan)
    before = scrape(runner.metrics.registry())
    assert before[("bmb_plan_last_run_success", "site")] == 1
    assert before[("bmb_plan_last_success_timestamp_seconds", "site")] == ok.finished.timestamp()  # type: ignore[union-attr]
    assert before[("bmb_plan_last_run_objects_copied", "site")] == 5
    assert before[("bmb_plan_snapshots", "site")] == 1

    world.clock.advance(timedelta(hours=1))
    world.broken.add("site")  # the source bucket is gone
    failed = await runner.run(plan)
    assert failed.status == "failed" and failed.exit_code == ExitCode.NOT_FOUND
    assert failed.failed_step == "sync" and "src" in (failed.error or "")
    after = scrape(runner.metrics.registry())
    assert after[("bmb_plan_last_run_success", "site")] == 0
    assert after[("bmb_plan_last_run_exit_code", "site")] == ExitCode.NOT_FOUND
    assert after[("bmb_plan_consecutive_failures", "site")] == 1
    assert after[("bmb_plan_runs_total", "site/failed")] == 1
    assert after[("bmb_plan_runs_total", "site/ok")] == 1
    assert (
        after[("bmb_plan_last_success_timestamp_seconds", "site")]
        == before[("bmb_plan_last_success_timestamp_seconds", "site")]
    )
    assert (
        after[("bmb_plan_last_run_start_timestamp_seconds", "site")] == failed.started.timestamp()
    )

    # a fresh process (the daemon restarted, or a textfile from `plan run`) sees the same
    fresh = PlanMetrics([plan], History(world.history.root))
    again = scrape(fresh.registry())
    for name in ("last_success_timestamp_seconds", "consecutive_failures", "last_run_success"):
        assert again[(f"bmb_plan_{name}", "site")] == after[(f"bmb_plan_{name}", "site")]
    textfile = world.tmp / "metrics" / "bmb.prom"
    fresh.write_textfile(textfile)
    assert parse(textfile.read_text()) == again


async def test_push_to_a_pushgateway(world: World, receiver: Receiver) -> None:
    await world.fill("src", 2)
    site, other = world.plan("site"), world.plan("other", backup="s3://bak/other")
    runner = world.runner([site, other])
    assert runner.metrics is not None
    await runner.run(site)
    await runner.metrics.push(receiver.url, "site")
    (push,) = receiver.requests
    assert push.method == "PUT" and push.path == "/metrics/job/backup-my-bucket/plan/site"
    pushed = parse(push.body)
    assert pushed[("bmb_plan_last_run_success", "site")] == 1
    assert {plan for _, plan in pushed} == {
        "site",
        "site/ok",
        "site/partial",
        "site/failed",
        "site/interrupted",
        "site/skipped",
    }  # only this plan


async def test_failing_pre_hook_skips_the_run_and_calls_for_help(
    world: World, receiver: Receiver, tmp_path: Path
) -> None:
    await world.fill("src", 5)
    out = tmp_path / "on-failure.json"
    plan = world.plan(
        "site",
        hooks={"pre": "echo checking mounts; exit 7", "on_failure": f"cat > {out}"},
        notify={
            "apprise": [f"json://{receiver.url.removeprefix('http://')}/notify"],
            "healthchecks": f"{receiver.url}/ping/check-1",
        },
    )
    record = await world.runner([plan], see_more="bmb --config /etc/bmb.toml").run(plan)
    assert record.status == "failed" and record.failed_step == "pre-hook"
    assert record.error == "the pre hook exited 7: the run was skipped"
    assert record.hooks["pre"] == {"exit_code": 7, "output": "checking mounts\n"}
    assert await world.current("bak") == {}, "nothing may be copied after a failing pre hook"
    assert record.steps == {}

    # healthchecks: start, then fail, with the same run id and the summary as the body
    pings = [r for r in receiver.requests if r.path.startswith("/ping/")]
    assert [r.path for r in pings] == ["/ping/check-1/start", "/ping/check-1/fail"]
    assert pings[0].query["rid"] == pings[1].query["rid"]
    assert "pre hook exited 7" in pings[1].body
    # apprise's json:// webhook: one failure notification that names the plan and what to run
    (note,) = [json.loads(r.body) for r in receiver.requests if r.path == "/notify"]
    assert note["type"] == "failure"
    assert "plan site failed" in note["title"]
    assert "failed at pre-hook" in note["message"]
    assert "error: the pre hook exited 7" in note["message"]
    assert "See more: bmb --config /etc/bmb.toml plan history site" in note["message"]
    # the on-failure hook got the summary on stdin
    summary = json.loads(out.read_text())
    assert summary["status"] == "failed" and summary["failed_step"] == "pre-hook"


async def test_success_pings_and_optional_success_notification(
    world: World, receiver: Receiver
) -> None:
    await world.fill("src", 3)
    notify = {"healthchecks": f"{receiver.url}/ping/c2"}
    quiet = world.plan("quiet", notify={**notify, "apprise": f"json://{receiver.url[7:]}/n"})
    loud = world.plan(
        "loud",
        backup="s3://bak/loud",
        notify={"apprise": f"json://{receiver.url[7:]}/n", "on_success": True},
    )
    runner = world.runner([quiet, loud])
    assert (await runner.run(quiet)).ok
    assert receiver.paths() == ["/ping/c2/start", "/ping/c2"]  # no notification on success
    assert (await runner.run(loud)).ok
    (note,) = [json.loads(r.body) for r in receiver.requests if r.path == "/n"]
    assert note["type"] == "success" and "plan loud succeeded" in note["title"]


async def test_undeliverable_notifications_are_recorded_not_fatal(world: World) -> None:
    await world.fill("src", 2)
    plan = world.plan(
        "site",
        hooks={"pre": "exit 1"},
        notify={
            "apprise": ["json://127.0.0.1:9/x", "nonsense"],
            "healthchecks": "http://127.0.0.1:9/p",
        },
    )
    record = await world.runner([plan]).run(plan)
    assert record.exit_code == 1 and record.failed_step == "pre-hook"
    errors = record.delivery_errors
    assert errors == [
        "ping http://127.0.0.1:9/…: ClientConnectorError",  # /start
        "ping http://127.0.0.1:9/…: ClientConnectorError",  # /fail
        "apprise cannot use a URL without a scheme",
        "apprise could not notify every service (json://127.0.0.1:9/…)",
    ]
    assert world.history.records("site")[-1].delivery_errors == errors


async def test_hooks_get_the_summary(world: World, tmp_path: Path) -> None:
    await world.fill("src", 4)
    env_file, stdin_file = tmp_path / "env", tmp_path / "stdin"
    plan = world.plan(
        "site",
        hooks={
            "pre": f"env | grep ^BMB_ | sort > {env_file}",
            "post": f"cat > {stdin_file}; test $BMB_OBJECTS_COPIED = 4",
        },
    )
    record = await world.runner([plan]).run(plan)
    assert record.ok, record
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert env["BMB_PLAN"] == "site" and env["BMB_STATUS"] == "running"
    assert env["BMB_BACKUP"] == "s3://bak" and env["BMB_RUN_ID"] == record.run_id
    assert set(env) - set(os.environ) == HOOK_VARIABLES  # a bmb the hook runs: no warning
    summary = json.loads(stdin_file.read_text())
    assert summary["status"] == "ok" and summary["steps"]["sync"]["copied"] == 4
    assert summary["steps"]["snapshot"]["id"] == record.steps["snapshot"]["id"]

    # a failing post hook makes the run a failure, with the backup done all the same
    plan = world.plan("site", hooks={"post": "exit 3", "timeout": "10s"})
    record = await world.runner([plan]).run(plan)
    assert record.status == "failed" and record.failed_step == "post-hook"
    assert "the backup steps succeeded" in (record.error or "")
    slow = world.plan("site", hooks={"pre": "sleep 30", "timeout": "1s"})
    record = await world.runner([slow]).run(slow)
    assert (
        record.failed_step == "pre-hook"
        and record.error == "the pre hook timed out: the run was skipped"
    )


async def test_lock_waits_then_gives_up(world: World) -> None:
    await world.fill("src", 3)
    plan = world.plan("site", lock_timeout="2m")
    runner = world.runner([plan])
    async with world.catalog().lock("gc"):  # another process's gc holds the catalog
        record = await runner.run(plan)
    assert record.exit_code == ExitCode.LOCKED and record.failed_step == "snapshot"
    assert record.lock_waits == 4 and record.lock_wait_seconds == 120
    assert record.steps["sync"]["copied"] == 3  # the sync was done; the snapshot waits
    assert [e["event"] for e in world.events].count("run.lock_wait") == 4
    assert runner.metrics is not None
    metrics = scrape(runner.metrics.registry())
    assert metrics[("bmb_plan_last_run_lock_waits", "site")] == 4
    assert metrics[("bmb_plan_lock_waits_total", "site")] == 4


async def test_runs_of_one_plan_never_overlap(world: World) -> None:
    plan = world.plan("site")
    runner = world.runner([plan])
    with world.history.plan_lock("site"):  # a run in another process, say
        record = await runner.run(plan)
    assert record.status == "skipped" and record.exit_code == ExitCode.LOCKED
    assert "is running already" in (record.error or "")
    assert (await runner.run(plan)).ok


async def test_verify_failure_fails_the_run(world: World) -> None:
    await world.fill("src", 3)
    plan = world.plan("site", verify=True)
    runner = world.runner([plan])
    assert (await runner.run(plan)).ok
    # someone deletes a version the snapshot needs, behind the tool's back
    doomed = (await world.current("bak"))["k00001"]
    await world.store.delete_versions("bak", [VersionRef("bak", doomed.key, doomed.version_id)])
    verify_only = world.plan("site", steps=["verify"])
    record = await runner.run(verify_only)
    assert record.status == "failed" and record.failed_step == "verify"
    assert record.steps["verify"]["missing"] == 1
    assert runner.metrics is not None
    metrics = scrape(runner.metrics.registry())
    assert metrics[("bmb_plan_last_verify_missing", "site")] == 1


async def test_a_run_that_changes_nothing_lists_the_backup_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync's own listing of the backup is the snapshot when the sync wrote nothing
    (design rule 8); a run that copies lists the bucket again for its snapshot."""
    listings = []
    real_take = backup_engine.take_snapshot

    async def take_snapshot(*args: Any, **kwargs: Any) -> SnapshotMeta:
        listings.append(await real_take(*args, **kwargs))
        return listings[-1]

    monkeypatch.setattr(backup_engine, "take_snapshot", take_snapshot)
    await world.fill("src", 30)
    plan = world.plan("site")
    runner = world.runner([plan])
    assert (await runner.run(plan)).ok and len(listings) == 1
    world.clock.advance(timedelta(hours=1))
    again = await runner.run(plan)
    assert again.ok and again.steps["sync"]["copied"] == 0, again
    assert again.steps["snapshot"]["keys"] == 30 and len(listings) == 1
    snapshots = await world.catalog().list()
    assert len(snapshots) == 2 and snapshots[-1].at < world.clock.now()
    world.clock.advance(timedelta(hours=1))
    await world.store.put("src", "k00001", b"changed")
    changed = await runner.run(plan)
    assert changed.ok and changed.steps["sync"]["copied"] == 1 and len(listings) == 2
