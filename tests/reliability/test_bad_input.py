"""Bad input through the CLI: the documented exit code, a message naming what and where, no
traceback, and no change to any bucket involved (every version listed before and after)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backup_my_bucket.cli import main as cli_main
from backup_my_bucket.errors import ExitCode
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.protocol import ObjectStore

from .. import figures
from ..cli.conftest import bmb
from ..conftest import S3Server, unique_bucket

pytestmark = pytest.mark.s3

MISSING = "bmb-no-such-bucket-r8"


@dataclass
class World:
    src: str
    bkp: str
    unv: str
    catalog: Path
    snap: str
    snap2: str
    tmp: Path

    def buckets(self) -> list[str]:
        return [self.src, self.bkp, self.unv]


@pytest.fixture(scope="module")
async def world(
    s3_server: S3Server, s3_store: ObjectStore, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    """A source, its versioned backup with two snapshots in a catalog dir, an unversioned bucket."""
    src, bkp, unv = unique_bucket("bi-src"), unique_bucket("bi-bkp"), unique_bucket("bi-unv")
    for b in (src, bkp, unv):
        await s3_store.create_bucket(b)
    await s3_store.set_versioning(bkp, True)
    for key in ("a.txt", "dir/b.txt", "dir/c.txt"):
        await s3_store.put(src, key, key.encode())
    await s3_store.put(unv, "u.txt", b"u")
    tmp = tmp_path_factory.mktemp("badinput")
    catalog = tmp / "catalog"
    mp = pytest.MonkeyPatch()
    for name, value in s3_server.env().items():
        mp.setenv(name, value)
    ids = []
    try:
        for _ in range(2):
            args = ["--json", "--catalog", str(catalog), "backup"]
            args += ["--source", f"s3://{src}", "--backup", f"s3://{bkp}"]
            code = await asyncio.to_thread(cli_main.run, args)
            assert code == 0
            await asyncio.sleep(1.1)
        ids = sorted(p.stem for p in (catalog / "snapshots").glob("*.json"))
        assert len(ids) == 2
        yield World(src, bkp, unv, catalog, ids[0], ids[1], tmp)
    finally:
        mp.undo()


@pytest.fixture
def cli_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)


def by_version(listing: dict[str, list[object]]) -> dict[tuple[str, object], object]:
    """Every version and delete marker of every bucket, keyed by bucket, key and version id."""
    return {
        (bucket, entry[:2]): entry  # type: ignore[index]
        for bucket, entries in listing.items()
        for entry in entries
    }


async def all_versions(store: ObjectStore, buckets: list[str]) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for b in buckets:
        out[b] = [
            (v.key, v.version_id, v.etag, v.is_delete_marker, v.is_latest)
            async for v in iter_versions(store, b)
        ]
    return out


def _damage(world: World, how: str, tag: str) -> Path:
    """A copy of the catalog with the first snapshot's index damaged; returns its root."""
    root = world.tmp / f"cat-{tag}"
    if not root.exists():
        shutil.copytree(world.catalog, root)
        index = root / "index" / f"{world.snap}.parquet"
        data = index.read_bytes()
        if how == "corrupt":
            mid = len(data) // 2
            index.write_bytes(
                data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 64]) + data[mid + 64 :]
            )
        elif how == "truncated":
            index.write_bytes(data[: len(data) // 3])
        elif how == "garbage":
            index.write_bytes(b"not a parquet file at all\n")
        else:
            raise AssertionError(how)
    return root


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[World], list[str]]
    code: int
    says: Callable[[World], list[str]] = field(default=lambda w: [])
    stdout_empty: bool = True
    env: tuple[tuple[str, str], ...] = ()


def _cat(w: World) -> list[str]:
    return ["--catalog", str(w.catalog)]


S, B, U = "s3://{}", "s3://{}", "s3://{}"
NF, FAIL, USAGE = ExitCode.NOT_FOUND, ExitCode.FAILURE, ExitCode.USAGE

CASES = [
    # --- a bucket that does not exist ---------------------------------------------------------
    Case(
        "init-missing-source",
        lambda w: ["init", "--source", f"s3://{MISSING}", "--backup", f"s3://{w.bkp}", "--yes"],
        NF,
        lambda w: [MISSING],
    ),
    Case(
        "init-missing-backup",
        lambda w: ["init", "--source", f"s3://{w.src}", "--backup", f"s3://{MISSING}", "--yes"],
        NF,
        lambda w: [MISSING],
    ),
    Case(
        "sync-missing-source",
        lambda w: ["sync", "--source", f"s3://{MISSING}", "--backup", f"s3://{w.bkp}"],
        NF,
        lambda w: [MISSING],
    ),
    Case(
        "sync-missing-backup",
        lambda w: ["sync", "--source", f"s3://{w.src}", "--backup", f"s3://{MISSING}"],
        NF,
        lambda w: [MISSING],
    ),
    Case(
        "backup-missing-source",
        lambda w: [*_cat(w), "backup", "--source", f"s3://{MISSING}", "--backup", f"s3://{w.bkp}"],
        NF,
        lambda w: [MISSING],
    ),
    Case(
        "backup-missing-backup",
        lambda w: [*_cat(w), "backup", "--source", f"s3://{w.src}", "--backup", f"s3://{MISSING}"],
        NF,
        lambda w: [MISSING],
    ),
    Case(
        "snapshot-missing-backup",
        lambda w: ["snapshot", "--backup", f"s3://{MISSING}"],
        NF,
        lambda w: [MISSING],
    ),
    Case(
        "restore-at-missing-backup",
        lambda w: [
            "restore",
            "--at",
            "2026-11-26T10:00:00Z",
            "--backup",
            f"s3://{MISSING}",
            "--to",
            f"s3://{w.unv}/r/",
        ],
        NF,
        lambda w: [MISSING],
    ),
    Case(
        "restore-missing-target",
        lambda w: [*_cat(w), "restore", w.snap, "--to", f"s3://{MISSING}"],
        NF,
        lambda w: [MISSING],
    ),
    Case(
        "gc-missing-backup",
        lambda w: ["gc", "--backup", f"s3://{MISSING}", "--keep-last", "1"],
        NF,
        lambda w: [MISSING],
    ),
    # --- a backup bucket without versioning ---------------------------------------------------
    Case(
        "sync-unversioned",
        lambda w: ["sync", "--source", f"s3://{w.src}", "--backup", f"s3://{w.unv}"],
        FAIL,
        lambda w: ["versioning", w.unv],
    ),
    Case(
        "backup-unversioned",
        lambda w: [*_cat(w), "backup", "--source", f"s3://{w.src}", "--backup", f"s3://{w.unv}"],
        FAIL,
        lambda w: ["versioning", w.unv],
    ),
    Case(
        "snapshot-unversioned",
        lambda w: ["--catalog", str(w.tmp / "unv-cat"), "snapshot", "--backup", f"s3://{w.unv}"],
        FAIL,
        lambda w: ["versioning", w.unv],
    ),
    Case(
        "gc-unversioned",
        lambda w: [
            "--catalog",
            str(w.tmp / "unv-cat"),
            "gc",
            "--backup",
            f"s3://{w.unv}",
            "--keep-last",
            "1",
        ],
        FAIL,
        lambda w: ["versioning", w.unv],
    ),
    # --- snapshot ids -------------------------------------------------------------------------
    Case(
        "show-unknown-id",
        lambda w: [*_cat(w), "show", "zzzz-no-such"],
        NF,
        lambda w: ["zzzz-no-such"],
    ),
    Case(
        "ls-unknown-id", lambda w: [*_cat(w), "ls", "zzzz-no-such"], NF, lambda w: ["zzzz-no-such"]
    ),
    Case(
        "restore-unknown-id",
        lambda w: [*_cat(w), "restore", "zzzz-no-such", "--to", f"s3://{w.unv}/r/"],
        NF,
        lambda w: ["zzzz-no-such"],
    ),
    Case(
        "verify-unknown-id",
        lambda w: [*_cat(w), "verify", "zzzz-no-such"],
        NF,
        lambda w: ["zzzz-no-such"],
    ),
    Case(
        "show-ambiguous-prefix",
        lambda w: [*_cat(w), "show", _common(w)],
        USAGE,
        lambda w: [_common(w)],
    ),
    Case(
        "restore-ambiguous-prefix",
        lambda w: [*_cat(w), "restore", _common(w), "--to", f"s3://{w.unv}/r/"],
        USAGE,
        lambda w: [_common(w)],
    ),
    # --- malformed values ---------------------------------------------------------------------
    Case(
        "snapshot-at-yesterday",
        lambda w: [*_cat(w), "snapshot", "--backup", f"s3://{w.bkp}", "--at", "yesterday"],
        USAGE,
        lambda w: ["yesterday"],
    ),
    Case(
        "restore-at-yesterday",
        lambda w: [
            *_cat(w),
            "restore",
            "--at",
            "yesterday",
            "--backup",
            f"s3://{w.bkp}",
            "--to",
            f"s3://{w.unv}/r/",
        ],
        USAGE,
        lambda w: ["yesterday"],
    ),
    Case(
        "restore-at-no-zone",
        lambda w: [
            *_cat(w),
            "restore",
            "--at",
            "2026-11-26T10:00:00",
            "--backup",
            f"s3://{w.bkp}",
            "--to",
            f"s3://{w.unv}/r/",
        ],
        USAGE,
        lambda w: ["2026-11-26T10:00:00"],
    ),
    Case(
        "snapshot-at-no-zone",
        lambda w: [
            *_cat(w),
            "snapshot",
            "--backup",
            f"s3://{w.bkp}",
            "--at",
            "2026-11-26T10:00:00",
        ],
        USAGE,
        lambda w: ["2026-11-26T10:00:00"],
    ),
    Case(
        "sync-url-no-scheme",
        lambda w: ["sync", "--source", w.src, "--backup", f"s3://{w.bkp}"],
        USAGE,
        lambda w: [w.src],
    ),
    Case(
        "sync-url-http",
        lambda w: ["sync", "--source", f"http://{w.src}", "--backup", f"s3://{w.bkp}"],
        USAGE,
        lambda w: [f"http://{w.src}"],
    ),
    Case(
        "sync-url-empty-bucket",
        lambda w: ["sync", "--source", "s3://", "--backup", f"s3://{w.bkp}"],
        USAGE,
        lambda w: ["s3://"],
    ),
    Case(
        "sync-url-bad-bucket-name",
        lambda w: ["sync", "--source", "s3://Bad_Bucket!", "--backup", f"s3://{w.bkp}"],
        USAGE,
        lambda w: ["Bad_Bucket!"],
    ),
    Case(
        "sync-bad-size",
        lambda w: [
            "sync",
            "--source",
            f"s3://{w.src}",
            "--backup",
            f"s3://{w.bkp}",
            "--multipart-threshold",
            "8XB",
        ],
        USAGE,
        lambda w: ["8XB"],
    ),
    Case(
        "gc-bad-duration",
        lambda w: [*_cat(w), "gc", "--backup", f"s3://{w.bkp}", "--keep-within", "7days"],
        USAGE,
        lambda w: ["7days"],
    ),
    Case(
        "verify-snapshot-of-missing-bucket",
        lambda w: ["--catalog", str(_moved(w)), "verify", w.snap],
        NF,
        lambda w: [MISSING],
    ),
    Case(  # the backup names its catalog: a snapshot into another one is refused
        "snapshot-into-another-catalog",
        lambda w: ["--catalog", "/proc/bmb", "snapshot", "--backup", f"s3://{w.bkp}"],
        USAGE,
        lambda w: ["/proc/bmb", "is not the catalog of", str(w.catalog)],
    ),
    Case(
        "gc-empty-policy",
        lambda w: [*_cat(w), "gc", "--backup", f"s3://{w.bkp}", "--min-keep", "1"],
        USAGE,
        lambda w: ["keep"],
    ),
]

# --- bad credentials: a wrong secret key fails the signature check --------------------------
WRONG = (("AWS_SECRET_ACCESS_KEY", "WRONG-secret-Xy9"),)
CASES += [
    Case(
        "init-wrong-secret",
        lambda w: ["init", "--source", f"s3://{w.src}", "--backup", f"s3://{w.bkp}", "--yes"],
        FAIL,
        lambda w: ["wrong credentials", "SignatureDoesNotMatch"],
        env=WRONG,
    ),
    Case(
        "sync-wrong-secret",
        lambda w: ["sync", "--source", f"s3://{w.src}", "--backup", f"s3://{w.bkp}"],
        FAIL,
        lambda w: ["wrong credentials", "SignatureDoesNotMatch"],
        env=WRONG,
    ),
    Case(
        "snapshot-wrong-secret",
        lambda w: [*_cat(w), "snapshot", "--backup", f"s3://{w.bkp}"],
        FAIL,
        lambda w: ["wrong credentials", "SignatureDoesNotMatch"],
        env=WRONG,
    ),
    Case(
        "restore-wrong-secret",
        lambda w: [*_cat(w), "restore", w.snap, "--to", f"s3://{w.unv}/r/"],
        FAIL,
        lambda w: ["wrong credentials", "SignatureDoesNotMatch"],
        env=WRONG,
    ),
    Case(
        "gc-wrong-secret",
        lambda w: [*_cat(w), "gc", "--backup", f"s3://{w.bkp}", "--keep-last", "1"],
        FAIL,
        lambda w: ["wrong credentials", "SignatureDoesNotMatch"],
        env=WRONG,
    ),
]

# --- an access key the server does not know ---------------------------------------------------
UNKNOWN = (("AWS_ACCESS_KEY_ID", "AKIDNOBODYKNOWS"),)
CASES += [
    Case(
        f"{name}-unknown-access-key",
        argv,
        FAIL,
        lambda w: ["wrong credentials", "does not know the access key id", "InvalidAccessKeyId"],
        env=UNKNOWN,
    )
    for name, argv in [
        ("sync", lambda w: ["sync", "--source", f"s3://{w.src}", "--backup", f"s3://{w.bkp}"]),
        ("snapshot", lambda w: [*_cat(w), "snapshot", "--backup", f"s3://{w.bkp}"]),
        ("restore", lambda w: [*_cat(w), "restore", w.snap, "--to", f"s3://{w.unv}/r/"]),
    ]
]

# --- endpoints: no scheme (from a flag, the environment, the config file), nothing listening
SYNC = ["sync", "--source", "s3://{src}", "--backup", "s3://{bkp}"]


def _sync(w: World) -> list[str]:
    return [a.format(src=w.src, bkp=w.bkp) for a in SYNC]


def _config(w: World, text: str) -> str:
    path = w.tmp / "endpoint.toml"
    path.write_text(text)
    return str(path)


CASES += [
    Case(
        "endpoint-no-scheme",
        lambda w: ["--endpoint-url", "127.0.0.1:28333", *_sync(w)],
        USAGE,
        lambda w: [
            "not an endpoint URL: '127.0.0.1:28333'",
            "hint: write the scheme too: http://127.0.0.1:28333",
        ],
    ),
    Case(
        "endpoint-no-scheme-from-env",
        _sync,
        USAGE,
        lambda w: ["'127.0.0.1:28333' (from the environment: AWS_ENDPOINT_URL)"],
        env=(("AWS_ENDPOINT_URL", "127.0.0.1:28333"),),
    ),
    Case(
        "endpoint-no-scheme-from-config",
        lambda w: ["--config", _config(w, 'source-endpoint-url = "localhost:9000"\n'), *_sync(w)],
        USAGE,
        lambda w: ["'localhost:9000' (from the config file)"],
    ),
    Case(
        "endpoint-bad-port",
        lambda w: ["--endpoint-url", "http://127.0.0.1:99999", *_sync(w)],
        USAGE,
        lambda w: ["not an endpoint URL", "port"],
    ),
    Case(
        "endpoint-nothing-listening",
        lambda w: ["--endpoint-url", "http://127.0.0.1:1", *_sync(w)],
        FAIL,
        lambda w: [
            "cannot connect to the S3 endpoint http://127.0.0.1:1: connection refused",
            "hint: is an S3 server listening there?",
        ],
    ),
    Case(
        "endpoint-unknown-host",
        lambda w: ["--endpoint-url", "http://bmb-no-such-host.invalid:9000", *_sync(w)],
        FAIL,
        lambda w: ["'bmb-no-such-host.invalid' does not resolve"],
    ),
]

# --- usage errors: click's own say it as ours do (error:, hint:, exit 2) ----------------------
CASES += [
    Case(
        "missing-option",
        lambda w: ["sync", "--source", f"s3://{w.src}"],
        USAGE,
        lambda w: ["error: missing option '--backup'", "hint: see `backup-my-bucket sync --help`"],
    ),
    Case(
        "no-such-option-nearest",
        lambda w: [*_cat(w), "gc", "--backup", f"s3://{w.bkp}", "--keep-dayly", "1"],
        USAGE,
        lambda w: ["no such option '--keep-dayly'", "did you mean --keep-daily?"],
    ),
    Case(
        "global-option-after-the-command",
        lambda w: ["snapshots", "--json"],
        USAGE,
        lambda w: ["--json is a global option", "backup-my-bucket --json snapshots"],
    ),
    Case(
        "bad-integer",
        lambda w: ["--workers", "many", "snapshots"],
        USAGE,
        lambda w: ["invalid value for '--workers'", "'many'"],
    ),
    Case(
        "backup-at",
        lambda w: [
            *_cat(w),
            "backup",
            "--source",
            f"s3://{w.src}",
            "--backup",
            f"s3://{w.bkp}",
            "--at",
            "2h",
        ],
        USAGE,
        lambda w: ["--at does not apply", "snapshot --at TIME"],
    ),
    Case(
        "quiet-and-verbose",
        lambda w: ["-q", "-v", *_cat(w), "snapshots"],
        USAGE,
        lambda w: ["-q asks for less", "give one of them"],
    ),
    Case(
        "log-file-unwritable",
        lambda w: ["--log-file", "/proc/bmb/run.log", *_cat(w), "snapshots"],
        USAGE,
        lambda w: ["cannot write the log file /proc/bmb/run.log"],
    ),
    Case(
        "journals-bad-duration",
        lambda w: ["journals", "--remove-older-than", "a week"],
        USAGE,
        lambda w: ["not a duration: 'a week'"],
    ),
]

# --- a damaged index file: an error naming the file, never a partial answer --------------------
for _how in ("corrupt", "truncated", "garbage"):

    def _c(w: World, how: str = _how) -> list[str]:
        return ["--catalog", str(_damage(w, how, how))]

    def _file(w: World, how: str = _how) -> list[str]:
        return [f"{w.snap}.parquet"]

    CASES += [
        Case(f"show-{_how}-index", lambda w, c=_c: [*c(w), "show", w.snap], FAIL, _file),
        Case(f"ls-{_how}-index", lambda w, c=_c: [*c(w), "ls", w.snap], FAIL, _file),
        Case(f"diff-{_how}-index", lambda w, c=_c: [*c(w), "diff", w.snap, w.snap2], FAIL, _file),
        Case(
            f"restore-{_how}-index",
            lambda w, c=_c: [*c(w), "restore", w.snap, "--to", f"s3://{w.unv}/r/"],
            FAIL,
            _file,
        ),
        Case(f"verify-{_how}-index", lambda w, c=_c: [*c(w), "verify", w.snap], FAIL, _file),
    ]


def _moved(w: World) -> Path:
    """A copy of the catalog whose first snapshot records a backup bucket that is gone."""
    root = w.tmp / "cat-moved"
    if not root.exists():
        shutil.copytree(w.catalog, root)
        meta = root / "snapshots" / f"{w.snap}.json"
        meta.write_text(meta.read_text().replace(w.bkp, MISSING))
    return root


def _common(w: World) -> str:
    """The longest prefix the two snapshot ids share (ambiguous by construction)."""
    n = 0
    while n < min(len(w.snap), len(w.snap2)) and w.snap[n] == w.snap2[n]:
        n += 1
    assert n >= 1, (w.snap, w.snap2)
    return w.snap[:n]


async def _run_case(
    case: Case,
    world: World,
    store: ObjectStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, str]:
    argv = case.argv(world)
    before = await all_versions(store, world.buckets())
    with monkeypatch.context() as mp:
        for name, value in case.env:
            mp.setenv(name, value)
        code, out, err = await bmb(capsys, *argv)
    after = await all_versions(store, world.buckets())
    assert code == case.code, (code, out, err)
    assert err.startswith("error: ") or "\nerror: " in err, err
    assert "Error: " not in err and "Usage: " not in err, err  # click's own format: never
    for text in case.says(world):
        assert text in err, (text, err)
    assert "Traceback" not in err and "Traceback" not in out
    if case.stdout_empty:
        assert out == "", out
    figures.objects(by_version(before), by_version(after), what="versions after a bad input")
    assert after == before
    figures.record("bad_input", case=case.id, exit=code)
    return out, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input(
    case: Case,
    world: World,
    cli_env: None,
    s3_store: ObjectStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _run_case(case, world, s3_store, capsys, monkeypatch)


LONG_KEY = "/".join(["L" * 250, "o" * 250, "n" * 250, "g" * 247])
ODD_KEYS = {
    "caf\u00e9/na\u00efve \u2603.txt": b"unicode",
    "\u65e5\u672c\u8a9e/\u30d5\u30a1\u30a4\u30eb": b"cjk",
    "with space/a b  c.txt": b"spaces",
    "line\nbreak.txt": b"newline",
    "emoji \U0001f600/x": b"astral plane",
    LONG_KEY: b"a 1,000-byte key",
    "zero/empty.bin": b"",
    "quote'\"&<>%?#=+.txt": b"punctuation",
    "site-2024.html": b"a file named like the folder beside it, plus a suffix",
    "site.idx": b"and another",
    "site/index.html": b"the folder's content",
    "site/deeper-1": b"the pattern one level down",
    "site/deeper/x": b"its folder",
}


async def live(store: ObjectStore, bucket: str) -> dict[str, tuple[int, str | None]]:
    return {
        v.key: (v.size, v.etag)
        async for v in iter_versions(store, bucket)
        if v.is_latest and not v.is_delete_marker
    }


async def test_odd_keys_survive_sync_backup_restore(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert len(LONG_KEY.encode()) == 1000
    src, bkp, into = unique_bucket("odd-src"), unique_bucket("odd-bkp"), unique_bucket("odd-to")
    for b in (src, bkp, into):
        await s3_store.create_bucket(b)
    await s3_store.set_versioning(bkp, True)
    for key, body in ODD_KEYS.items():
        await s3_store.put(src, key, body)
    original = await live(s3_store, src)
    assert set(original) == set(ODD_KEYS)
    cat = ["--json", "--catalog", str(tmp_path / "cat")]
    pair = ["--source", f"s3://{src}", "--backup", f"s3://{bkp}"]
    code, out, err = await bmb(capsys, *cat, "sync", *pair)
    assert code == 0, err
    assert json.loads(out)["copied"] == len(ODD_KEYS)
    await asyncio.sleep(1.1)
    code, out, err = await bmb(capsys, *cat, "backup", *pair)
    assert code == 0, err
    result = json.loads(out)
    assert result["sync"]["copied"] == 0 and result["snapshot"]["keys"] == len(ODD_KEYS)
    snap = result["snapshot"]["id"]

    code, out, err = await bmb(capsys, *cat, "ls", snap)
    assert code == 0, err
    assert sorted(json.loads(line)["key"] for line in out.splitlines()) == sorted(ODD_KEYS)

    # damage the source every way, then roll it back in place; and restore into a new bucket
    for key in list(ODD_KEYS)[::2]:
        await s3_store.delete(src, key)
    for key in list(ODD_KEYS)[1::2]:
        await s3_store.put(src, key, b"overwritten")
    await s3_store.put(src, "stray\tkey", b"not in the snapshot")
    code, out, err = await bmb(capsys, *cat, "restore", snap, "--yes")
    assert code == 0, err
    assert json.loads(out)["verified"] is True
    rolled_back = await live(s3_store, src)
    figures.objects(original, rolled_back, what="odd keys after an in-place rollback")
    assert rolled_back == original
    code, out, err = await bmb(capsys, *cat, "restore", snap, "--to", f"s3://{into}")
    assert code == 0, err
    restored = await live(s3_store, into)
    figures.objects(original, restored, what="odd keys restored into a new bucket")
    assert restored == original
    for key, body in ODD_KEYS.items():
        assert b"".join([chunk async for chunk in s3_store.get(into, key)]) == body
