"""Credentials never appear in output, logs or error messages: not the secret key, not a wrong
secret key a user mistyped, and (in --debug request logs) not the access key id either."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_my_bucket.cli import main as cli_main
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY, S3Server, unique_bucket
from .faultproxy import FaultProxy

pytestmark = pytest.mark.s3

WRONG_SECRET = "WRONG-secret-Xy9"


async def _bmb(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(cli_main.run, list(args))
    out, err = capsys.readouterr()
    return code, out + err


def _assert_clean(text: str, *, debug: bool, secrets: tuple[str, ...]) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked:\n{text}"
    if debug:
        assert TEST_ACCESS_KEY not in text, text


@pytest.fixture
async def buckets(
    s3_server: S3Server, s3_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    if s3_server.secret_key != TEST_SECRET_KEY:
        pytest.skip("needs the recognisable test secret (BMB_TEST_ENDPOINT uses another)")
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    src, bkp = unique_bucket("sec-src"), unique_bucket("sec-bkp")
    await s3_store.create_bucket(src)
    await s3_store.create_bucket(bkp)
    for i in range(3):
        await s3_store.put(src, f"k/{i}", b"x" * i)
    return src, bkp


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
async def test_no_secret_in_output(
    debug: bool,
    buckets: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    src, bkp = buckets
    base = ["--debug"] if debug else []
    base += ["--catalog", str(tmp_path / "cat")]
    pair = ["--source", f"s3://{src}", "--backup", f"s3://{bkp}"]
    ok = [
        ["init", *pair, "--yes"],
        ["sync", *pair],
        ["backup", *pair],
        ["--json", "snapshots"],
        ["ls", "latest"],
        ["verify", "latest", "--read-data", "100"],
        ["restore", "latest", "--to", f"s3://{src}/copy/", "--dry-run"],
        ["gc", "--backup", f"s3://{bkp}", "--keep-last", "1", "--dry-run"],
    ]
    failing = [
        ["sync", "--source", "s3://bmb-no-such-bucket-sec", "--backup", f"s3://{bkp}"],
        ["restore", "nope-no-such-id", "--to", f"s3://{src}"],
        ["snapshot", "--backup", "s3://bmb-no-such-bucket-sec"],
        ["gc", "--backup", f"s3://{bkp}", "--keep-within", "7days"],
    ]
    seen_request_log = False
    for args in ok:
        code, text = await _bmb(capsys, *base, *args)
        assert code == 0, (args, text)
        _assert_clean(text, debug=debug, secrets=(TEST_SECRET_KEY,))
        seen_request_log |= "botocore" in text
    for args in failing:
        code, text = await _bmb(capsys, *base, *args)
        assert code != 0, (args, text)
        _assert_clean(text, debug=debug, secrets=(TEST_SECRET_KEY,))
    assert seen_request_log == debug  # --debug really logged requests: the check had teeth

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRONG_SECRET)
    for args in (["sync", *pair], ["snapshot", "--backup", f"s3://{bkp}"], ["ls", "latest"]):
        code, text = await _bmb(capsys, *base, *args)
        if args[0] != "ls":  # ls reads the local catalog only
            assert code == 1 and "credentials" in text, (args, text)
        _assert_clean(text, debug=debug, secrets=(TEST_SECRET_KEY, WRONG_SECRET))


@pytest.mark.parametrize("secret", [TEST_SECRET_KEY, WRONG_SECRET], ids=["right", "wrong"])
def test_no_secret_from_a_subprocess(
    secret: str, s3_server: S3Server, buckets: tuple[str, str], tmp_path: Path
) -> None:
    """The real process: logging goes to stderr, and nothing is captured in-process."""
    src, bkp = buckets
    env = {**os.environ, **s3_server.env(), "AWS_SECRET_ACCESS_KEY": secret}
    args = ["--debug", "--catalog", str(tmp_path / "cat"), "backup"]
    args += ["--source", f"s3://{src}", "--backup", f"s3://{bkp}"]
    done = subprocess.run(
        [sys.executable, "-m", "backup_my_bucket", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    text = done.stdout + done.stderr
    if secret == TEST_SECRET_KEY:
        # versioning is off on the backup bucket: a failure after real, logged requests
        assert done.returncode == 1 and "versioning" in text, text
    else:
        assert done.returncode == 1 and "credentials" in text, text
    assert "botocore" in text  # request logging was on
    _assert_clean(text, debug=True, secrets=(TEST_SECRET_KEY, WRONG_SECRET))


# --- session tokens and refreshed credentials --------------------------------------------
# SeaweedFS refuses session tokens it did not issue; the re-signing proxy (faultproxy.py,
# ``resign``) takes any credentials and re-signs with the server's, so the credentials flow
# through the whole request path on success. Straight to SeaweedFS is the error path.

ROTATING = """\
import datetime, json, secrets, sys
n = secrets.token_hex(6)
values = {"AccessKeyId": "AKIDROT" + n.upper(), "SecretAccessKey": "rot-secret-" + n + "-Qx",
          "SessionToken": "IQoJrot" + n + "/to+ken=="}
with open(sys.argv[1], "a") as f:
    f.write("\\n".join(values.values()) + "\\n")
expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)
print(json.dumps({"Version": 1, **values, "Expiration": expires.isoformat()}))
"""


def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "backup_my_bucket", "--debug", *args],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k}


@pytest.fixture
def resigning(s3_server: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(
        s3_server.endpoint_url, rate=0, resign=(s3_server.access_key, s3_server.secret_key)
    ) as proxy:
        yield proxy


def _assert_no_values(text: str, values: list[str]) -> None:
    assert values and "Sending http request" in text  # request logging was on
    for value in values:
        assert value not in text, f"{value!r} leaked"


def _success_and_error_paths(
    env: dict[str, str], s3_server: S3Server, proxy: FaultProxy, pair: list[str], tmp: Path
) -> str:
    """init and backup through the re-signing proxy; a missing bucket through it; a sync
    straight to SeaweedFS, which refuses the credentials. The whole output of all four."""
    ok = env | {"AWS_ENDPOINT_URL": proxy.url}
    text = ""
    for args in (["init", *pair, "--yes"], ["backup", *pair]):
        code, more = _cli(ok, "--catalog", str(tmp / "c"), *args)
        assert code == 0, more
        text += more
    assert "x-amz-security-token" in text.lower()  # it was sent (and its value redacted)
    code, more = _cli(ok, "snapshot", "--backup", "s3://bmb-no-such-bucket-x")
    assert code != 0, more
    direct = env | {"AWS_ENDPOINT_URL": s3_server.endpoint_url}
    code, last = _cli(direct, "--catalog", str(tmp / "d"), "sync", *pair)
    assert code == 1 and "credentials" in last and "Traceback" in last, last
    return text + more + last


def test_session_token_never_printed(
    s3_server: S3Server, buckets: tuple[str, str], resigning: FaultProxy, tmp_path: Path
) -> None:
    src, bkp = buckets
    values = ["AKIDSTATICSESSION1", "static-secret-Vb7/+x", "IQoJstaticToken/+abc=="]
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    env = _clean_env() | {"AWS_DEFAULT_REGION": "us-east-1"} | dict(zip(names, values, strict=True))
    pair = ["--source", f"s3://{src}", "--backup", f"s3://{bkp}"]
    _assert_no_values(_success_and_error_paths(env, s3_server, resigning, pair, tmp_path), values)


def test_refreshed_credentials_never_printed(
    s3_server: S3Server, buckets: tuple[str, str], resigning: FaultProxy, tmp_path: Path
) -> None:
    """credential_process credentials that expire within botocore's refresh window: each use
    brings a new set (new key id, secret and token), each must be redacted."""
    src, bkp = buckets
    script, produced, config = tmp_path / "rotate.py", tmp_path / "values", tmp_path / "config"
    script.write_text(ROTATING)
    config.write_text(
        f"[profile rotating]\ncredential_process = {sys.executable} {script} {produced}\n"
    )
    env = _clean_env() | {"AWS_CONFIG_FILE": str(config), "AWS_DEFAULT_REGION": "us-east-1"}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_PROFILE": "rotating"}
    pair = ["--source", f"s3://{src}", "--backup", f"s3://{bkp}"]
    text = _success_and_error_paths(env, s3_server, resigning, pair, tmp_path)
    values = produced.read_text().split()
    assert len(values) >= 3 * 4  # refreshed: several sets in one run
    _assert_no_values(text, values)
