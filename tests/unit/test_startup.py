"""Start-up stays light: the CLI's entry point and `--help` import no HTTP stack, no pyarrow,
no rich, no engine (each costs tens to hundreds of milliseconds before the first request).
Checked in a fresh interpreter, where sys.modules shows what an import really pulled in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    ("name", "loads"),
    [
        ("S3Config", set()),  # settings alone
        ("S3Store", {"botocore"}),  # its exceptions; the client's stack once a request needs it
        # what builds the client
        ("client", {"aiobotocore", "botocore", "aiohttp", "urllib3", "yarl", "dateutil"}),
    ],
)
def test_the_s3_package_imports_on_use(name: str, loads: set[str]) -> None:
    loaded = loaded_after(f"from backup_my_bucket.storage.s3 import {name}")
    http = ("aiobotocore", "botocore", "aiohttp", "urllib3", "yarl", "dateutil")
    assert {m for m in http if m in loaded} == loads


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


CERT = Path(__file__).parents[1] / "reliability" / "data" / "test-tls-cert.pem"
KEY = CERT.with_name("test-tls-key.pem")
TLS_PROBE = """
import asyncio, ssl
from backup_my_bucket.storage.s3 import S3Store, lazytls
import aiohttp, aiohttp.connector as connector
from aiohttp import web

def certs():
    return [c.cert_store_stats()["x509"] for c in
            (connector._SSL_CONTEXT_VERIFIED, connector._SSL_CONTEXT_UNVERIFIED)]

async def main():
    before = certs()
    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="ok"))
    runner = web.AppRunner(app)
    await runner.setup()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain({cert!r}, {key!r})
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:  # aiohttp's own default context
        async with session.get(f"https://localhost:{{port}}/") as answer:
            text = await answer.text()
    await runner.cleanup()
    print(lazytls.DEFERRED, before, certs(), text)

asyncio.run(main())
"""


# makes the aiohttp about to be imported report a minor version lazytls was not checked against
UNTESTED_AIOHTTP = """
import importlib.util, sys

class Untested:
    def find_spec(self, name, path=None, target=None):
        if name != "aiohttp":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.__version__ = "3.99.0"

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Untested())
"""


def tls_probe(preamble: str = "") -> list[str]:
    """Whether lazytls deferred, aiohttp's default contexts' certificates before and after a
    request through them, and the answer."""
    code = preamble + TLS_PROBE.format(cert=str(CERT), key=str(KEY))
    env = {**os.environ, "SSL_CERT_FILE": str(CERT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_aiohttp_default_tls_contexts_load_their_certificates_on_first_use() -> None:
    """Opening the S3 stack reads no CA bundle for aiohttp's default contexts; the first
    HTTPS request through them loads it (trusting what the system trusts: here the test
    certificate, through SSL_CERT_FILE), so users of aiohttp's defaults are served as before.
    Fails on an aiohttp whose minor version lazytls.TESTED lacks: check its internals
    (storage/s3/lazytls.py) against that version, then add it there."""
    assert tls_probe() == ["True", "[0,", "0]", "[1,", "1]", "ok"]


def test_an_untested_aiohttp_is_imported_as_it_is() -> None:
    """On an aiohttp lazytls was not checked against, nothing is deferred: the certificates
    are loaded at import, as aiohttp does itself."""
    assert tls_probe(UNTESTED_AIOHTTP) == ["False", "[1,", "1]", "[1,", "1]", "ok"]
