"""The `--json` fields docs/cli.md lists, command by command, are exactly the ones the
commands print: each command is run for real (SeaweedFS) and its top-level keys compared."""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from backup_my_bucket.engine.journal import Journal

from ..conftest import unique_bucket
from .conftest import bmb
from .test_docs import DOCS

pytestmark = pytest.mark.s3


def documented() -> dict[str, set[str]]:
    """Each bullet of the `--json` section: the command and the ``"field":`` names in it."""
    text = (DOCS / "cli.md").read_text()
    section = text[text.index("\n## --json") : text.index("\n## Exit codes")]
    fields: dict[str, set[str]] = {}
    for bullet in re.split(r"\n(?=- `)", section):
        head = re.match(r"- `([^`]+)`", bullet)
        if head:  # "ls ID" is ls's
            command = " ".join(w for w in head.group(1).split() if w.islower())
            fields[command] = set(re.findall(r'"([a-z0-9_]+)":', bullet))
    return fields


@pytest.mark.usefixtures("cli_env")
async def test_json_fields_are_the_documented_ones(
    s3_store: object, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from backup_my_bucket.storage.s3 import S3Store

    assert isinstance(s3_store, S3Store)
    src, bk, new, nbk = (unique_bucket(x) for x in ("jd-src", "jd-bk", "jd-new", "jd-nbk"))
    for bucket in (src, bk, new, nbk):
        await s3_store.create_bucket(bucket)
    for key in ("img0/a", "img0-b", "img0.idx"):
        await s3_store.put(src, key, key.encode())
    printed: dict[str, list[dict[str, object]]] = defaultdict(list)

    async def run(*args: str) -> None:
        code, out, err = await bmb(capsys, "--json", *args)
        assert code == 0, (args, err)
        command = args[0] if args[0] not in ("plan",) else " ".join(args[:2])
        printed[command] += [json.loads(line) for line in out.splitlines()]

    pair = ["--source", f"s3://{src}", "--backup", f"s3://{bk}"]
    B = ["--backup", f"s3://{bk}"]
    await run("init", *pair, "--yes")
    await run("sync", *pair)
    await asyncio.sleep(1.1)
    await run("backup", *pair)
    await run("snapshot", *B)
    await s3_store.put(src, "img0/a", b"changed")
    await run("sync", *pair)
    await run("snapshots", *B)
    await run("show", "latest", *B)
    await run("ls", "latest", *B)
    first = str(printed["snapshots"][0]["id"])
    await run("diff", first, "live", *B)
    await run("verify", "latest", *B, "--read-data", "100")
    await run("restore", first, *B, "--to", f"s3://{new}/r", "--dry-run")
    await run("restore", first, *B, "--to", f"s3://{new}/r")
    await run("gc", *B, "--keep-last", "1", "--dry-run")
    await run("promote", first, *B, "--to", f"s3://{new}/p", "--new-backup", f"s3://{nbk}",
              "--dry-run")  # fmt: skip
    await run("promote", first, *B, "--to", f"s3://{new}/p", "--new-backup", f"s3://{nbk}",
              "--yes")  # fmt: skip
    journals = tmp_path / "journals"
    journal = Journal(journals, "0" * 32, {"backup": f"s3://{bk}", "point": "at:x", "target":
                      f"s3://{new}", "mode": "rollback", "filters": []})  # fmt: skip
    journal.open()
    journal.deleted("k")
    journal.close()
    await run("journals", "--journal-dir", str(journals))

    docs = documented()
    assert set(printed) == {
        "init", "sync", "backup", "snapshot", "snapshots", "show", "ls", "diff", "verify",
        "restore", "gc", "promote", "journals",
    }  # fmt: skip
    dry_run_actions = {"action", "key", "version_id", "size", "reason"}
    for command, objects in printed.items():
        keys: set[str] = set()
        for obj in objects:
            if set(obj) != dry_run_actions:  # the dry runs' action lines: checked elsewhere
                keys |= set(obj)
        assert command in docs, f"docs/cli.md has no --json entry for {command}"
        assert keys == docs[command], (command, keys ^ docs[command])
