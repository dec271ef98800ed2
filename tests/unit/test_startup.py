"""Start-up stays light: the CLI's entry point and `--help` import no HTTP stack, no pyarrow,
no rich, no engine (each costs tens to hundreds of milliseconds before the first request).
Checked in a fresh interpreter, where sys.modules shows what an import really pulled in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("aiobotocore", "botocore", "aiohttp", "pyarrow", "rich", "yarl", "multidict")


def loaded_after(code: str) -> list[str]:
    """Top-level packages (and our modules) in sys.modules after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps(sorted({m if m.startswith('backup_my_bucket') else m.split('.')[0]"
        " for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_the_entry_point_imports_nothing_heavy() -> None:
    loaded = loaded_after("import backup_my_bucket.cli.main")
    assert [m for m in HEAVY if m in loaded] == []
    assert not [
        m for m in loaded if m.startswith(("backup_my_bucket.engine", "backup_my_bucket.ops"))
    ]
    assert "asyncio" not in loaded


def test_help_imports_no_command() -> None:
    code = (
        "from backup_my_bucket.cli.main import run\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert run(['--help']) == 0\n"
        "assert 'restore' in out.getvalue()"
    )
    loaded = loaded_after(code)
    assert [m for m in HEAVY if m in loaded] == []
    assert not [m for m in loaded if m.startswith("backup_my_bucket.cli.commands.")]


@pytest.mark.parametrize(
    ("name", "heavy"),
    [("S3Config", False), ("S3Store", True)],
)
def test_the_s3_package_imports_on_use(name: str, heavy: bool) -> None:
    loaded = loaded_after(f"from backup_my_bucket.storage.s3 import {name}")
    http = {"aiobotocore", "botocore", "aiohttp"}
    assert http <= set(loaded) if heavy else not http & set(loaded)


def test_a_command_imports_its_own_module_only() -> None:
    code = (
        "from backup_my_bucket.cli.main import run\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert run(['snapshots', '--help']) == 0"
    )
    commands = [m for m in loaded_after(code) if m.startswith("backup_my_bucket.cli.commands.")]
    assert commands == ["backup_my_bucket.cli.commands.snapshots"]


def test_the_index_imports_pyarrow_when_used(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert "pyarrow" not in loaded_after("import backup_my_bucket.catalog.index")
    code = (
        "from backup_my_bucket.catalog.index import IndexWriter\n"
        f"IndexWriter(__import__('pathlib').Path({str(tmp_path / 'i.parquet')!r}), 's1').close()"
    )
    assert "pyarrow" in loaded_after(code)
