"""The project's one exception tree.

Every error a user can see is a :class:`BackupError`. Each class knows its exit code (the
contract in docs/cli.md) and may carry a hint: one sentence telling the user what to do.
Low-level errors (botocore, OS, pyarrow) are translated into these at the boundary where they
happen and chained with ``raise ... from exc``; the CLI maps them to exit codes in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    PARTIAL = 3
    NOT_FOUND = 10
    LOCKED = 11
    INTERRUPTED = 130
    TERMINATED = 143


class BackupError(Exception):
    """Base of every error the tool reports to a user."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its class and its state, whatever its constructor takes: a work unit
        run in another process (a Dask worker) hands its items' errors back as they were."""
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[BackupError], message: str, state: dict[str, object]) -> BackupError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class UsageError(BackupError):
    """A bad argument, option, time or size given by the user."""

    exit_code = ExitCode.USAGE


class NotConfirmed(UsageError):
    """A destructive step was not confirmed (no terminal and no --yes, or the answer was no);
    nothing was changed."""


class NotImplementedYet(BackupError):
    """A command the CLI contract names but this version does not do yet."""


class MissingDependency(BackupError):
    """An optional library (an extra such as ``ops``) that a command needs is not installed."""


class ClusterError(BackupError):
    """The Dask cluster that runs the work units cannot be reached, or lost a unit for good."""


# --- not found (exit 10) -------------------------------------------------------------------


class NotFoundError(BackupError):
    exit_code = ExitCode.NOT_FOUND


class BucketNotFound(NotFoundError):
    def __init__(self, bucket: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"bucket {bucket!r} does not exist",
            hint=hint or "check the bucket name, --endpoint-url and --region",
        )
        self.bucket = bucket


class ObjectNotFound(NotFoundError):
    def __init__(self, bucket: str, key: str, version_id: str | None = None) -> None:
        where = f"s3://{bucket}/{key}" + (f" (version {version_id})" if version_id else "")
        super().__init__(f"no such object: {where}")
        self.bucket = bucket
        self.key = key
        self.version_id = version_id


class SnapshotNotFound(NotFoundError):
    pass


# --- storage (exit 1) ----------------------------------------------------------------------


class StorageError(BackupError):
    """An S3 request failed in a way that retrying did not cure."""


class AccessDenied(StorageError):
    pass


class InvalidCredentials(StorageError):
    pass


class EndpointUnreachable(StorageError):
    pass


class VersioningNotEnabled(StorageError):
    def __init__(self, bucket: str) -> None:
        super().__init__(
            f"versioning is not enabled on backup bucket {bucket!r}: "
            "overwrites and deletes there would destroy history",
            hint=f"run `backup-my-bucket init --backup s3://{bucket} ...` to enable it",
        )
        self.bucket = bucket


class IncompleteListing(BackupError):
    """A version listing missed keys that ListObjectsV2 shows (the completeness audit)."""

    SHOWN = 20

    def __init__(self, where: str, keys: Sequence[str], *, tree: bool = True) -> None:
        shown = ", ".join(repr(k) for k in keys[: self.SHOWN])
        more = f" and {len(keys) - self.SHOWN} more" if len(keys) > self.SHOWN else ""
        hint = (
            "nothing was trusted to that listing's end; report the server's name and version "
            "with these keys (docs/design.md, 'Paging a tree-walking server')"
        )
        if not tree:  # paged as a key-order server: a SeaweedFS it did not recognise?
            hint = (
                "nothing was trusted to that listing's end; if the server is SeaweedFS behind "
                "a proxy that hides its Server header, pass --list-paging tree; otherwise "
                + hint.partition("; ")[2]
            )
        super().__init__(
            f"incomplete listing: the version listing of {where} missed {len(keys)} key(s) "
            f"that ListObjectsV2 shows: {shown}{more}",
            hint=hint,
        )
        self.where = where
        self.keys = list(keys)


class PreconditionFailed(StorageError):
    """A conditional write found the object changed (used for catalog locks)."""


# --- catalog -------------------------------------------------------------------------------


class CatalogError(BackupError):
    pass


class CorruptIndex(CatalogError):
    pass


class UnsupportedFormat(CatalogError):
    pass


class VerificationFailed(BackupError):
    """`verify` found versions missing or changed in the backup bucket."""


class Locked(BackupError):
    exit_code = ExitCode.LOCKED


# --- partial failure and interruption ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemFailure:
    """One work item (an object, a version) that failed for good after its retries."""

    key: str
    version_id: str | None
    reason: str


class PartialFailure(BackupError):
    """Some items failed; everything else was done. The failures are listed."""

    exit_code = ExitCode.PARTIAL

    def __init__(self, message: str, failures: Sequence[ItemFailure]) -> None:
        super().__init__(message, hint="rerun the same command: finished work is skipped")
        self.failures = list(failures)


class DamagedSnapshots(PartialFailure):
    """Some snapshots of a catalog are damaged; the others were listed all the same (exit 3)."""

    def __init__(self, message: str, failures: Sequence[ItemFailure], *, hint: str) -> None:
        super().__init__(message, failures)
        self.hint = hint


class Interrupted(BackupError):
    exit_code = ExitCode.INTERRUPTED


class Terminated(Interrupted):
    """Stopped by SIGTERM (systemd, Kubernetes); a rerun continues."""

    exit_code = ExitCode.TERMINATED
