"""What a Dask unit carries (engine/cluster_worker.py): its items compact, its outcomes in
one piece.

No cluster here: Dask's own serialisation of the payloads, as the client and workers do it."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from distributed.protocol import deserialize, serialize

from backup_my_bucket import __version__
from backup_my_bucket.engine.actions import ActionKind
from backup_my_bucket.engine.cluster_worker import Done, Packed, source_digest, worker_version
from backup_my_bucket.engine.executor import DeleteKey, destination
from backup_my_bucket.engine.gc import DeleteVersions
from backup_my_bucket.engine.restore_execute import RestoreCopy
from backup_my_bucket.engine.restore_plan import Action, Reason
from backup_my_bucket.engine.sync import SyncCopy, SyncItem
from backup_my_bucket.engine.transfer import CopyBetween
from backup_my_bucket.errors import StorageError
from backup_my_bucket.model import ObjectVersion, S3Url, VersionRef

WHEN = datetime(2026, 11, 30, 7, 0, 0, 123000, tzinfo=UTC)


def _actions(n: int) -> list[Action]:
    return [
        Action(ActionKind.COPY, f"img0/{i}", Reason.MISSING, f"v{i}", i, f"{i:032x}", "STANDARD")
        for i in range(n)
    ] + [Action(ActionKind.DELETE, "img0-1.txt", Reason.EXTRA, target_etag="e", target_size=3)]


def _travelled(packed: Packed[object]) -> list[object]:
    return pickle.loads(pickle.dumps(packed)).items()  # type: ignore[no-any-return]


def test_a_batch_of_dataclasses_travels_as_field_tuples_and_comes_back_equal() -> None:
    actions = _actions(300)
    packed = Packed.of(actions)
    assert packed.kind is Action and all(type(row) is tuple for row in packed.rows)
    assert _travelled(packed) == actions
    assert len(pickle.dumps(packed)) < len(pickle.dumps(actions))
    version = ObjectVersion("sp ace/ü+%25.txt", "v1", WHEN, 6 * 1024 * 1024, "e-2", True)
    items = [
        SyncItem(ActionKind.COPY, version.key, version, None),
        SyncItem(ActionKind.DELETE, "a//double", None, version),
    ]
    assert _travelled(Packed.of(items)) == items
    assert _travelled(Packed.of([version])) == [version]


@dataclass(frozen=True, slots=True)
class _Computed:
    key: str
    size: int
    label: str = field(init=False, default="")


@dataclass(frozen=True, slots=True)
class _Named:
    key: str
    size: int = field(kw_only=True)


def test_items_that_cannot_be_rebuilt_from_a_field_tuple_travel_as_they_are() -> None:
    batches: list[list[object]] = [
        [[VersionRef("b", "k", "v1"), VersionRef("b", "k", "v2")]],  # gc: a batch per item
        [VersionRef("b", "k"), "a string"],  # mixed types
        ["k1", "k2"],
        [_Computed("k", 1)],  # a field outside __init__
        [_Named("k", size=1)],  # a keyword-only field
        [],
    ]
    for batch in batches:
        packed = Packed.of(batch)
        assert packed.kind is None
        assert _travelled(packed) == batch


def test_a_units_outcomes_are_one_piece_for_dask_whatever_their_number() -> None:
    """Dask serialises a bare list element by element: one frame per item read on the way
    back; a unit's outcomes travel as one object."""
    failed = StorageError("SlowDown")
    for n in (1, 1000):
        done = Done([("0" * 32, None)] * n + [(None, failed)])
        header, frames = serialize(done)
        assert len(frames) == 1
        back = deserialize(header, frames)
        assert back.results[:-1] == done.results[:-1]
        assert isinstance(back.results[-1][1], StorageError)


def test_every_unit_of_work_names_the_folder_it_writes_to() -> None:
    """The shared rate is kept per destination (engine/rate.py): each copy, delete and
    verify work says where its requests go."""
    src, dst = S3Url("src", "a/"), S3Url("dst", "b/")
    copy = CopyBetween(src, dst, same_endpoint=True)
    assert destination(RestoreCopy(copy)) == dst
    assert destination(SyncCopy(copy)) == dst
    assert destination(DeleteKey(dst)) == dst
    assert destination(DeleteVersions("dst", WHEN)) == S3Url("dst")
    assert destination(object()) is None


def test_two_checkouts_of_one_version_with_other_code_differ(tmp_path: Path) -> None:
    """Workers must run the coordinator's code, not just its version string: dev checkouts
    of one version share ``__version__`` (engine/cluster.py refuses such workers)."""
    trees = []
    for body in (b"x = 1\n", b"x = 2\n", b"x = 1\n"):
        root = tmp_path / f"p{len(trees)}" / "backup_my_bucket"
        (root / "engine").mkdir(parents=True)
        (root / "__init__.py").write_bytes(b"")
        (root / "engine" / "plan.py").write_bytes(body)
        (root / "engine" / "notes.txt").write_bytes(body * len(trees))  # not code: ignored
        (root / "engine" / ".#plan.py").symlink_to(f"nobody@host.{len(trees)}")  # an editor's
        trees.append(source_digest(root))
    assert trees[0] != trees[1] and trees[0] == trees[2]
    assert worker_version().startswith(f"{__version__}+")
