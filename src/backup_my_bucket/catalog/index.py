"""The snapshot index: one key-sorted Parquet file (zstd) per snapshot, plus its manifest.

Format ``1.0`` (docs/design.md, "Snapshot format"):
- columns ``key`` (string, ascending, unique), ``version_id`` (string), ``size`` (int64),
  ``etag`` (string), ``last_modified`` (timestamp ms, UTC), ``storage_class`` (string);
- row groups of at most ``ROW_GROUP`` rows, with min/max statistics on ``key`` so a prefix
  query reads only the row groups that can hold it;
- file key-value metadata ``bmb.format`` = ``1.0`` and ``bmb.snapshot`` = the id.
The manifest (JSON, see :class:`SnapshotMeta`) records the index's SHA-256 and size; a reader
verifies both before it trusts a single row, and refuses a newer major format.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import BackupError, CorruptIndex, UnsupportedFormat
from ..model import ObjectVersion, S3Url
from ..units import format_time

FORMAT_VERSION = "1.0"
FORMAT_MAJOR = 1  # the newest index format this tool reads
HELD_FORMAT_VERSION = "2.0"  # a manifest with `held`: readers of 1.x refuse it, never ignore it
INDEX_HELD_FORMAT_VERSION = "3.0"  # with `holds_index`: readers of 2.x refuse it too
MANIFEST_MAJOR = 3  # the newest manifest format this tool reads (1.0; 2.0 `held`; 3.0)
ROW_GROUP = 65_536
CHUNK = 8_192  # rows turned into Arrow arrays at once, while the listing still runs

COLUMNS = ("key", "version_id", "size", "etag", "last_modified", "storage_class")

if TYPE_CHECKING:
    import pyarrow as pa


@functools.cache
def schema() -> pa.Schema:
    """The index's columns (pyarrow is imported here, when an index is first written or read:
    commands that never touch one start without it)."""
    import pyarrow as pa

    text, when = pa.string(), pa.timestamp("ms", tz="UTC")
    types = (text, text, pa.int64(), text, when, text)
    nullable = (False, False, False, True, False, True)
    fields: list[Any] = [
        pa.field(name, kind, nullable=null)
        for name, kind, null in zip(COLUMNS, types, nullable, strict=True)
    ]
    return pa.schema(fields)


def preload_index() -> None:
    """Import what writing an index needs (pyarrow, ~0.1 s), e.g. while waiting anyway."""
    import pyarrow.parquet  # noqa: F401

    schema()


_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")


def check_snapshot_id(value: str, where: str, error: type[BackupError] = CorruptIndex) -> str:
    """``value`` if it can be a snapshot id: letters, digits, ``.``, ``_``, ``-``, no ``..``.

    Ids name files (``index/<id>.parquet``): one read from a manifest, a catalog listing or
    the command line is checked here before any path is built from it, so that no id can
    point outside the catalog (``/``, ``..``, NUL).
    """
    if not _ID.fullmatch(value) or ".." in value:
        raise error(
            f"{where}: {value!r} is not a valid snapshot id",
            hint="snapshot ids hold letters, digits, '.', '_' and '-' only",
        )
    return value


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """A snapshot's manifest: everything about it except the rows."""

    id: str
    at: datetime
    created: datetime
    backup: str  # s3://bucket[/prefix]
    source: str | None
    keys: int
    total_bytes: int
    index_sha256: str
    index_size: int
    tags: tuple[str, ...] = ()
    tool_version: str = ""
    format_version: str = FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)
    held: tuple[tuple[str, str], ...] = ()
    """(key, version id) of index rows gc keeps whatever the stamps say (engine/cut.Holds)."""
    holds_index: bool = False
    """gc keeps every row of the index: the open uploads at T could not be listed."""

    def __post_init__(self) -> None:
        if self.holds_index and self.format_version in (FORMAT_VERSION, HELD_FORMAT_VERSION):
            object.__setattr__(self, "format_version", INDEX_HELD_FORMAT_VERSION)
        elif self.held and self.format_version == FORMAT_VERSION:
            object.__setattr__(self, "format_version", HELD_FORMAT_VERSION)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = format_time(self.at)
        data["created"] = format_time(self.created)
        data["tags"] = list(self.tags)
        data["extra"] = dict(self.extra)
        data["held"] = [{"key": key, "version_id": version} for key, version in self.held]
        if not self.held:
            del data["held"]
        if not self.holds_index:
            del data["holds_index"]
        return data

    def of(self, backup: S3Url) -> bool:
        """Whether this is a snapshot of the folder ``backup`` (compared as folders: a manifest
        that recorded ``s3://bk/site`` is one of ``s3://bk/site/``)."""
        return S3Url.parse(self.backup) == backup

    def summary(self) -> dict[str, Any]:
        """The fields `snapshot --json` and `snapshots --json` print (docs/cli.md)."""
        return {
            "id": self.id,
            "at": format_time(self.at),
            "keys": self.keys,
            "bytes": self.total_bytes,
            "backup": self.backup,
            "source": self.source,
            "tags": list(self.tags),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> SnapshotMeta:
        check_format(str(data.get("format_version", "")), where, MANIFEST_MAJOR)
        try:
            return cls(
                id=check_snapshot_id(str(data["id"]), f"snapshot manifest {where}"),
                at=datetime.fromisoformat(str(data["at"])),
                created=datetime.fromisoformat(str(data["created"])),
                backup=str(data["backup"]),
                source=data.get("source"),
                keys=int(data["keys"]),
                total_bytes=int(data["total_bytes"]),
                index_sha256=str(data["index_sha256"]),
                index_size=int(data["index_size"]),
                tags=tuple(data.get("tags") or ()),
                tool_version=str(data.get("tool_version", "")),
                format_version=str(data["format_version"]),
                extra=dict(data.get("extra") or {}),
                held=tuple(
                    (str(row["key"]), str(row["version_id"])) for row in data.get("held") or ()
                ),
                holds_index=_holds_index(data),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptIndex(
                f"snapshot manifest {where} is malformed: {exc}",
                hint="the file was edited or damaged; restore it from a copy of the catalog",
            ) from exc

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False).encode()


def _holds_index(data: Mapping[str, Any]) -> bool:
    """The manifest's ``holds_index``: a bool, true in every 3.x manifest (that is what 3.0
    means: read as false, gc would collect what the snapshot holds)."""
    value = data.get("holds_index", False)
    if not isinstance(value, bool):
        raise ValueError(f"holds_index is {value!r}, not true or false")
    if str(data["format_version"]).startswith("3.") and not value:
        raise ValueError("a format 3 manifest without holds_index")
    return value


def check_format(version: str, where: str, newest: int = FORMAT_MAJOR) -> None:
    """Refuse a format whose major version is above ``newest`` (minor ones only add)."""
    major, _, _ = version.partition(".")
    if not major.isdigit():
        raise CorruptIndex(f"{where}: no valid format version ({version!r})")
    if int(major) > newest:
        raise UnsupportedFormat(
            f"{where} is in snapshot format {version}, newer than this tool reads ({newest}.x)",
            hint="upgrade backup-my-bucket to read it",
        )


class IndexWriter:
    """Streams rows (in ascending key order) into a Parquet file, one row group at a time.

    Every :data:`CHUNK` rows become Arrow arrays as they arrive, so the work left when the
    listing ends (and the snapshot waits for it) is the last chunk and the file's encoding."""

    def __init__(self, path: Path, snapshot_id: str) -> None:
        self.path = path
        self.snapshot_id = snapshot_id
        # opened with the first chunk: pyarrow (~0.05 s to import) waits until needed
        self._writer: Any = None
        self._cols: tuple[list[Any], ...] = ([], [], [], [], [], [])
        self._chunks: list[list[Any]] = []  # per chunk, its columns as Arrow arrays
        self._last_key: str | None = None
        self.rows = 0
        self.bytes = 0

    def add(self, v: ObjectVersion) -> None:
        if self._last_key is not None and v.key <= self._last_key:
            raise ValueError(f"index rows out of order: {v.key!r} after {self._last_key!r}")
        self._last_key = v.key
        keys, version_ids, sizes, etags, times, classes = self._cols
        keys.append(v.key)
        version_ids.append(v.version_id)
        sizes.append(v.size)
        etags.append(v.etag)
        times.append(v.last_modified)
        classes.append(v.storage_class)
        self.rows += 1
        self.bytes += v.size
        if len(keys) >= CHUNK:
            self._convert()
            if len(self._chunks) * CHUNK >= ROW_GROUP:
                self._flush()

    def _convert(self) -> None:
        """The rows held as Python lists, as one chunk of Arrow arrays."""
        import pyarrow as pa

        if self._cols[0]:
            # each column built in its own type: a cast would import pyarrow.compute (~0.3 s)
            types = [f.type for f in self._open().schema]
            self._chunks.append([pa.array(c, t) for c, t in zip(self._cols, types, strict=True)])
            for col in self._cols:
                col.clear()

    def _open(self) -> Any:
        import pyarrow.parquet as pq

        if self._writer is None:
            meta = {"bmb.format": FORMAT_VERSION, "bmb.snapshot": self.snapshot_id}
            self._writer = pq.ParquetWriter(
                str(self.path), schema().with_metadata(meta), compression="zstd",
                compression_level=3, write_statistics=["key"],
            )  # fmt: skip
        return self._writer

    def _flush(self) -> None:
        import pyarrow as pa

        writer = self._open()
        self._convert()
        if not self._chunks:
            return
        columns = [pa.chunked_array(parts) for parts in zip(*self._chunks, strict=True)]
        table = pa.Table.from_arrays(columns, schema=writer.schema)
        writer.write_table(table, row_group_size=ROW_GROUP)
        self._chunks.clear()

    def close(self) -> tuple[str, int]:
        """Finish the file; return its SHA-256 and size."""
        self._flush()
        self._open().close()
        return file_sha256(self.path), self.path.stat().st_size

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        for col in self._cols:
            col.clear()
        self._chunks.clear()
        self.path.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class IndexReader:
    """A verified snapshot index. Construction checks size, checksum and format first."""

    def __init__(self, path: Path, meta: SnapshotMeta) -> None:
        self.path = path
        self.meta = meta
        where = str(path)
        hint = "the index file is damaged; restore it from a copy of the catalog"
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise CorruptIndex(f"snapshot index {where} cannot be read: {exc}", hint=hint) from exc
        if size != meta.index_size:
            raise CorruptIndex(
                f"snapshot index {where} is {size} bytes, its manifest says "
                f"{meta.index_size}: truncated or replaced",
                hint=hint,
            )
        if file_sha256(path) != meta.index_sha256:
            raise CorruptIndex(
                f"snapshot index {where} does not match its checksum: corrupt or tampered",
                hint=hint,
            )
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self._file = pq.ParquetFile(str(path))
        except (pa.ArrowException, OSError) as exc:
            raise CorruptIndex(f"snapshot index {where} is not readable: {exc}", hint=hint) from exc
        kv = self._file.schema_arrow.metadata or {}
        check_format(kv.get(b"bmb.format", b"").decode(), where)

    def _row_groups(self, prefix: str) -> Iterator[int]:
        """Row groups whose key range can hold keys under ``prefix`` (statistics pruning)."""
        md = self._file.metadata
        for i in range(md.num_row_groups):
            if prefix:
                stats = md.row_group(i).column(0).statistics
                if stats is not None and stats.has_min_max:
                    if str(stats.max) < prefix:
                        continue
                    if str(stats.min) > prefix and not str(stats.min).startswith(prefix):
                        break  # keys ascend: no later group can hold the prefix
            yield i

    def refs(self) -> Iterator[tuple[str, str]]:
        """Every row's ``(key, version id)``, in strictly ascending key order (checked: gc
        matches them to its listing by that order), the two columns only, :data:`CHUNK` rows
        in memory at a time (what gc holds; a tenth of the cost of :meth:`rows`)."""
        import pyarrow as pa

        last: str | None = None
        try:
            for batch in self._file.iter_batches(CHUNK, columns=["key", "version_id"]):
                keys = cast("list[str]", batch.column(0).to_pylist())  # not null: the schema
                versions = cast("list[str]", batch.column(1).to_pylist())
                for key, version in zip(keys, versions, strict=True):
                    if last is not None and key <= last:
                        raise self._disorder(key, last)
                    last = key
                    yield key, version
        except (pa.ArrowException, OSError) as exc:
            raise CorruptIndex(f"snapshot index {self.path} cannot be read: {exc}") from exc

    def _disorder(self, key: str, last: str) -> CorruptIndex:
        return CorruptIndex(
            f"snapshot index {self.path} is out of key order ({key!r} after {last!r})",
            hint="the index file is damaged; restore it from a copy of the catalog",
        )

    def rows(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """The snapshot's versions under ``prefix``, in key order."""
        import pyarrow as pa

        try:
            for i in self._row_groups(prefix):
                table = self._file.read_row_group(i)
                cols = [table.column(n).to_pylist() for n in COLUMNS]
                for key, vid, size, etag, modified, sclass in zip(*cols, strict=True):
                    if prefix and not key.startswith(prefix):
                        if key > prefix:
                            return
                        continue
                    yield ObjectVersion(
                        key=key,
                        version_id=vid,
                        last_modified=modified,
                        size=size,
                        etag=etag,
                        storage_class=sclass,
                    )
        except (pa.ArrowException, OSError) as exc:
            raise CorruptIndex(f"snapshot index {self.path} cannot be read: {exc}") from exc
