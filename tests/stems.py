"""A bucket with history on the folder-plus-suffix layout, and what every listing must find.

:func:`write_scene` writes :func:`~tests.samples.stem_layout` keys (phase 1), remembers the
whole second ``at`` after them, then (phase 2, a later second) overwrites, deletes, deletes
and writes again, and adds keys. The :class:`Scene` records the truth from the writes
themselves, never from a listing: the state at ``at``, the state now, and the versions gc must
delete when the restoration points are ``at`` and now (those live at neither).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from backup_my_bucket.storage.protocol import ObjectStore

from .samples import stem_layout

PHASE_TWO_KEYS = ["img9-0000.jpg", "img9.idx", "img9/0000.jpg", "img0/deep/img9 x", "img0 new"]


@dataclass
class Scene:
    keys: list[str]  # phase 1, sorted
    at: datetime  # a whole second between the phases
    then: dict[str, bytes]  # the state at ``at``
    now: dict[str, bytes]  # the state after phase 2
    middle: set[tuple[str, str]] = field(default_factory=set)  # (key, version id) gc deletes


def data(key: str, phase: int) -> bytes:
    return f"{phase}:{key}".encode()


async def write_scene(
    store: ObjectStore,
    bucket: str,
    *,
    per: int,
    versioned: bool,
    between: Callable[[], Awaitable[datetime]],
    concurrency: int = 48,
) -> Scene:
    """Fill ``bucket`` (created here); ``between()`` lets time pass after phase 1 and returns
    the instant ``at`` (a whole second no write of either phase shares)."""
    await store.create_bucket(bucket)
    if versioned:
        await store.set_versioning(bucket, True)
    keys = stem_layout(per)
    gate = asyncio.Semaphore(concurrency)

    async def put(key: str, phase: int) -> str:
        async with gate:
            return await store.put(bucket, key, data(key, phase))

    await asyncio.gather(*(put(k, 1) for k in keys))
    at = await between()
    scene = Scene(keys, at, {k: data(k, 1) for k in keys}, {k: data(k, 1) for k in keys})
    if not versioned:
        return scene

    async def change(key: str, how: str) -> None:
        async with gate:
            if how == "twice":  # the first overwrite is live at neither point
                scene.middle.add((key, await store.put(bucket, key, data(key, 2))))
                await store.put(bucket, key, data(key, 3))
                scene.now[key] = data(key, 3)
            elif how == "delete":  # the marker is the newest entry: kept
                await store.delete(bucket, key)
                del scene.now[key]
            else:  # deleted and written again: the marker is live at neither point
                marker = await store.delete(bucket, key)
                assert marker is not None
                scene.middle.add((key, marker))
                await store.put(bucket, key, data(key, 4))
                scene.now[key] = data(key, 4)

    plan = [(k, "twice") for k in keys[::7]]
    plan += [(k, "delete") for k in keys[3::11] if k not in keys[::7]]
    plan += [(k, "again") for k in keys[5::13] if k not in keys[::7] and k not in keys[3::11]]
    await asyncio.gather(*(change(k, how) for k, how in plan))
    for key in PHASE_TWO_KEYS:
        await put(key, 5)
        scene.now[key] = data(key, 5)
    return scene
